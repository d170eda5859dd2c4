"""The pipeline's stages as plain functions over clients and a staging area; the Airflow operators call these.

One module per stage (``extract``, ``embed`` for annotate and embed, ``load`` for index and alias swap, ``check`` for
validation). Import the stage you need: only ``embed`` and ``check`` import torch, so the other tasks start fast.
"""
