"""Admin commands of the ``headwater`` CLI, grouped by subject.

Each command opens a runtime from the environment (``Settings()``), calls the services in one
unit of work, and renders the result with Rich. Services are imported inside the commands so
that ``headwater --help`` stays quick.
"""
