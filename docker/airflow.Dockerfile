# The Airflow image (scheduler, api-server, dag-processor, triggerer, and workers for `local` tasks).
# Its Python (3.11) is the worker image's and constraints.txt's.
# Build from the repository root:  docker build -f docker/airflow.Dockerfile -t gogoku-airflow:latest .
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml /opt/gogoku/
COPY --chown=airflow:root include /opt/gogoku/include
COPY --chown=airflow:root configs /opt/gogoku/configs
RUN pip install --no-cache-dir -r /opt/gogoku/requirements.txt -c /opt/gogoku/constraints.txt \
 && pip install --no-cache-dir --no-deps /opt/gogoku \
 && pip check

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
ENV GOGOKU_CONFIG_DIR=/opt/gogoku/configs
