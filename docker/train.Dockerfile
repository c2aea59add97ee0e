# Training image (no robot, no ROS distro): the same pinned venv and set-up script as CI, on
# Debian 12 with Python 3.11 (the ROS 2 wheels' interpreter). PyTorch's CUDA wheels bring their own
# CUDA runtime; run with `--gpus all` (NVIDIA container toolkit). Build from the repository root:
#   docker build -f docker/train.Dockerfile -t wmpo_ros:train .
FROM python:3.11-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    MUJOCO_GL=egl \
    PATH=/wmpo/.venv/bin:$PATH \
    AMENT_PREFIX_PATH=/wmpo/.venv \
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends \
        cmake g++ make \
        libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libusb-1.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /wmpo
COPY . .
RUN make env
CMD ["make", "demo"]
