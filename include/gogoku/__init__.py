"""gogoku: J-Quants data layer, dataset builder and ATFT-GAT-FAN training (no Airflow imports)."""

__version__ = "0.1.0"
