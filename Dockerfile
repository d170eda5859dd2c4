# The image every Airflow service of docker-compose.yaml runs, the GPU worker included: the official Airflow image of
# the pinned version, plus the project's locked dependencies and the latechunk package. Build it with
# `docker compose build` (or `docker build -t airflow-latechunk:0.1.0 .`). Everything is installed at build time;
# a container downloads nothing, models included (they live in the Hugging Face cache volume, see HF_HOME).
#
# The tag below must name the apache-airflow version pinned in requirements.lock (tests/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

# /opt/hf-cache: the model cache, where a volume is mounted; group 0 may write, whatever AIRFLOW_UID the containers
# run as. /opt/latechunk: the lock and the package sources, owned by the user who runs pip (the image refuses root).
USER root
RUN mkdir -p /opt/hf-cache /opt/latechunk/src \
    && chown -R airflow:0 /opt/hf-cache /opt/latechunk \
    && chmod 2775 /opt/hf-cache
USER airflow
ENV HF_HOME=/opt/hf-cache \
    HF_HUB_DISABLE_TELEMETRY=1

# 1. The project's pins, exactly as every other environment installs them (torch from PyPI is built with CUDA and
#    brings its CUDA libraries; it also runs on CPU). apache-airflow is pinned in the lock to this image's version.
COPY --chown=airflow:0 requirements.lock /opt/latechunk/requirements.lock
RUN pip install --no-cache-dir -r /opt/latechunk/requirements.lock

# 2. The latechunk package itself, without touching the dependencies installed above.
COPY --chown=airflow:0 pyproject.toml README.md /opt/latechunk/src/
COPY --chown=airflow:0 include/ /opt/latechunk/src/include/
RUN pip install --no-cache-dir --no-deps --no-build-isolation /opt/latechunk/src \
    && rm -rf /opt/latechunk/src

# 3. DAGs, operators and the sample corpus, so the image also runs without the compose file's mounts
#    (e.g. in Kubernetes pods); the compose file mounts the checkout's folders over them.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/

# Fail the build, not the first task, when an installed version differs from a pin of requirements.lock.
RUN python -c "import importlib.metadata as m; from packaging.requirements import Requirement as R; \
rs = [R(line.strip()) for line in open('/opt/latechunk/requirements.lock') if line[:1].isalnum()]; \
rs = [r for r in rs if r.marker is None or r.marker.evaluate()]; \
bad = [(r.name, str(r.specifier), m.version(r.name)) for r in rs if not r.specifier.contains(m.version(r.name), prereleases=True)]; \
assert not bad, bad; import latechunk, torch; \
print(len(rs), 'pins installed; torch', torch.__version__, 'CUDA', torch.version.cuda)"
