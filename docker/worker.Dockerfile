# The worker image that the kubernetes / gke pod tasks run (`gogoku ...`), GPU steps included.
# Python 3.11 as the Airflow image (apache/airflow:3.3.2-python3.11) and constraints.txt. No CUDA base
# image is needed: PyPI's torch wheel carries its CUDA runtime (nvidia-* wheels); the node provides
# the driver (GKE GPU node pools install it).
# Build from the repository root:  docker build -f docker/worker.Dockerfile -t gogoku-worker:latest .
FROM python:3.11.14-slim-bookworm

# libgomp1: LightGBM's OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 50000 gogoku

WORKDIR /opt/gogoku
COPY requirements-worker.txt constraints.txt pyproject.toml ./
# The core package's dependencies only (not Airflow), under the same pins as the Airflow image.
RUN pip install --no-cache-dir -r requirements-worker.txt -c constraints.txt
COPY include ./include
COPY configs ./configs
RUN pip install --no-cache-dir --no-deps . && pip check
ENV GOGOKU_CONFIG_DIR=/opt/gogoku/configs \
    GOGOKU_LOCAL_CACHE=/var/cache/gogoku \
    PYTHONUNBUFFERED=1
USER 50000
ENTRYPOINT []
CMD ["gogoku", "--help"]
