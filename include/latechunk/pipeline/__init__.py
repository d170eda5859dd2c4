"""The pipeline's stages as plain functions over clients and a staging area; the Airflow operators call these.

One module per task, named as the task is (``extract``, ``annotate``, ``embed``, ``index``, ``validate``), and
``shared`` for what they share. Import the stage you need: only ``embed`` and ``validate`` import torch, so the other
tasks start fast.
"""
