#!/usr/bin/env bash
# The runner's GPU check in one command: the full-size pipeline (random weights) in fp16 and
# bf16, printing s/frame, MFU and peak memory (torch.cuda.max_memory_allocated) beside the
# figure bench/gpu_memory.py computes on paper. Needs a CUDA GPU with >= 24 GB for 768².
# With several GPUs, one multi-GPU line more: one video on 1 and N GPUs (bench/parallel.py).
#
#   bench/gpu.sh [--dry-run] [--python PY] [--sizes 768,512] [--frames 48] [--steps 20]
#                [--lower-vram] [--peak-tflops N] [--dtypes float16,bfloat16] [--gpus N]
# --gpus N: the multi-GPU line on N GPUs (default: all GPUs torch sees, when 2 or more).
# --dry-run prints the commands without running them (no GPU needed). Exit codes: 0 done,
# 2 bad arguments, 3 no CUDA device visible to torch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="$root/.venv/bin/python"
dry_run=0
dtypes="float16,bfloat16"
gpus=""
extra=()

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_value() {  # $1 option, $2 number of remaining arguments
  if [[ "$2" -lt 2 ]]; then
    echo "gpu.sh: $1 needs a value" >&2
    exit 2
  fi
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --python) need_value "$1" $#; python="$2"; shift 2 ;;
    --dtypes) need_value "$1" $#; dtypes="$2"; shift 2 ;;
    --sizes|--frames|--steps|--peak-tflops)
      need_value "$1" $#
      if [[ ! "$2" =~ ^[0-9][0-9.,]*$ ]]; then
        echo "gpu.sh: $1 '$2' is not a number (or a comma-separated list for --sizes)" >&2
        exit 2
      fi
      extra+=("$1" "$2"); shift 2 ;;
    --lower-vram) extra+=("$1"); shift ;;
    --gpus)
      need_value "$1" $#
      if [[ ! "$2" =~ ^[0-9]+$ ]] || [[ "$2" -lt 2 ]]; then
        echo "gpu.sh: --gpus '$2' is not a number of GPUs >= 2" >&2
        exit 2
      fi
      gpus="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "gpu.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

commands=()
IFS=',' read -r -a dtype_list <<< "$dtypes"
for dtype in "${dtype_list[@]}"; do
  case "$dtype" in
    float16|bfloat16) ;;
    *) echo "gpu.sh: --dtypes: '$dtype' is neither float16 nor bfloat16" >&2; exit 2 ;;
  esac
  command="$(printf '%q ' "$python" "$here/_gpu_run.py" --dtype "$dtype" ${extra[@]+"${extra[@]}"})"
  commands+=("${command% }")
done

multi_gpu() {  # $1: number of GPUs; a 180-frame 768² video: 4 windows of 48/4, at most 4x
  local command
  command="$(printf '%q ' "$python" "$here/parallel.py" --device cuda --full-size \
    --dtype float16 --workers "1,$1" --size 768 --frames 180 --steps 20 --context 48 \
    --overlap 4 --warmup 1)"
  echo "${command% }"
}
if [[ -n "$gpus" ]]; then
  commands+=("$(multi_gpu "$gpus")")
fi

if [[ "$dry_run" -eq 1 ]]; then
  printf '%s\n' "${commands[@]}"
  exit 0
fi

if [[ ! -x "$python" ]]; then
  echo "gpu.sh: $python is not an executable python (make .venv/.installed, or --python)" >&2
  exit 2
fi
if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)'; then
  echo "gpu.sh: torch sees no CUDA device on this machine: this check needs a GPU." >&2
  echo "        Without one, bench/gpu_memory.py gives the memory and FLOPs on paper." >&2
  exit 3
fi
"$python" -c 'import torch; print("GPU:", torch.cuda.get_device_name(), "torch", torch.__version__)'
if [[ -z "$gpus" ]]; then
  count="$("$python" -c 'import torch; print(torch.cuda.device_count())')"
  if [[ "$count" -ge 2 ]]; then
    commands+=("$(multi_gpu "$count")")
  fi
fi
for command in "${commands[@]}"; do
  echo "+ $command"
  eval "$command"
done
