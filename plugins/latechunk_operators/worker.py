"""How a task instance names the worker that ran it (Airflow's ``[core] hostname_callable``)."""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """``LATECHUNK_WORKER_HOSTNAME`` when the worker sets it, else the machine's FQDN (Airflow's default).

    Workers that share one machine (the local stack of ``scripts/airflow.sh``) set it to their own loopback
    address, so a task instance's hostname says which worker ran it and still reaches the log server.
    """
    return os.environ.get("LATECHUNK_WORKER_HOSTNAME") or socket.getfqdn()
