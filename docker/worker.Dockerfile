# The GPU worker image that KubernetesPodOperator / GKEStartPodOperator tasks run (`gogoku ...`).
# CUDA 12 runtime + torch 2.13.0 (cu12 build) + cudf-polars for the polars GPU engine.
# Build from the repository root:  docker build -f docker/worker.Dockerfile -t gogoku-worker:latest .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/gogoku
COPY requirements.txt requirements-gpu.txt constraints.txt pyproject.toml ./
# The worker needs the core package's dependencies only, not Airflow itself.
RUN grep -v '^apache-airflow' requirements.txt > requirements-worker.txt \
 && pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cu128 "torch==2.13.0" \
 && pip install --no-cache-dir -r requirements-worker.txt -r requirements-gpu.txt --extra-index-url https://pypi.nvidia.com
COPY include ./include
COPY configs ./configs
RUN pip install --no-cache-dir --no-deps .
ENV GOGOKU_CONFIG_DIR=/opt/gogoku/configs
ENTRYPOINT []
CMD ["gogoku", "--help"]
