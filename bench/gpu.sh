#!/usr/bin/env bash
# The runner's GPU checks in one command (bench/gpu_check.py, a few minutes on one GPU):
# versions, fp32/fp16/bf16 frames against the CPU's, s/frame and peak memory at 512² and
# 768² against the estimate, lowerVram, an injected OOM, and with several GPUs the
# multi-GPU line; a table and how to reproduce it. --mfu adds the full-size s/frame/MFU
# table per dtype (bench/_gpu_run.py; needs >= 24 GB for 768²).
#
#   bench/gpu.sh [--dry-run] [--print] [--mfu] [--python PY] [--sizes 768,512] [--frames 48]
#                [--steps 20] [--lower-vram] [--peak-tflops N] [--dtypes float16,bfloat16]
#                [--gpus N]
# --gpus N: the multi-GPU line on N GPUs (default: all GPUs torch sees, when 2 or more).
# --dry-run runs the same checks on the CPU with the tiny weights (seconds; no GPU);
# --print prints the commands without running them. Exit codes: 0 done, 1 a check failed,
# 2 bad arguments, 3 no CUDA device visible to torch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="$root/.venv/bin/python"
dry_run=0
print_only=0
mfu=0
check_args=()
dtypes="float16,bfloat16"
gpus=""
extra=()

usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
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
    --print) print_only=1; shift ;;
    --mfu) mfu=1; shift ;;
    --python) need_value "$1" $#; python="$2"; shift 2 ;;
    --dtypes) need_value "$1" $#; dtypes="$2"; shift 2 ;;
    --sizes|--frames|--steps|--peak-tflops)
      need_value "$1" $#
      if [[ ! "$2" =~ ^[0-9][0-9.,]*$ ]]; then
        echo "gpu.sh: $1 '$2' is not a number (or a comma-separated list for --sizes)" >&2
        exit 2
      fi
      extra+=("$1" "$2")
      if [[ "$1" != "--peak-tflops" ]]; then check_args+=("$1" "$2"); fi
      shift 2 ;;
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
done

check_command() {  # $1: extra arguments of gpu_check.py
  local command
  # shellcheck disable=SC2086
  command="$(printf '%q ' "$python" "$here/gpu_check.py" ${check_args[@]+"${check_args[@]}"} $1)"
  echo "${command% }"
}
if [[ "$dry_run" -eq 1 ]]; then  # the same checks on the CPU, tiny weights
  commands+=("$(check_command "--dry-run ${gpus:+--gpus $gpus}")")
  if [[ "$print_only" -eq 0 ]]; then
    if [[ ! -x "$python" ]]; then
      echo "gpu.sh: $python is not an executable python (make .venv/.installed, or --python)" >&2
      exit 2
    fi
    echo "gpu.sh --dry-run: on the CPU with the tiny weights; no figure means anything for a GPU"
    eval "${commands[0]}"
    exit $?
  fi
fi
if [[ "$mfu" -eq 1 ]]; then
  for dtype in "${dtype_list[@]}"; do
    command="$(printf '%q ' "$python" "$here/_gpu_run.py" --dtype "$dtype" ${extra[@]+"${extra[@]}"})"
    commands+=("${command% }")
  done
fi

if [[ "$print_only" -eq 1 ]]; then
  if [[ "$dry_run" -eq 0 ]]; then
    printf '%s\n' "$(check_command "${gpus:+--gpus $gpus}")"
  fi
  if [[ ${#commands[@]} -gt 0 ]]; then
    printf '%s\n' "${commands[@]}"
  fi
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
    gpus="$count"
  fi
fi
commands=("$(check_command "${gpus:+--gpus $gpus}")" ${commands[@]+"${commands[@]}"})
status=0
for command in "${commands[@]}"; do
  echo "+ $command"
  eval "$command" || status=$?
done
exit "$status"
