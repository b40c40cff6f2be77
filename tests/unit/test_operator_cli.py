"""``musepose-operator run`` refuses bad settings before it touches the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OPERATOR = str(Path(sys.executable).parent / "musepose-operator")


def test_bad_settings_exit_with_one_line_each_naming_the_setting(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("backoff_limit: -1\n")
    env = {**os.environ, "MUSEPOSE_SETTINGS_FILE": str(settings_file),
           "MUSEPOSE_PENDING_TIMEOUT_SECONDS": "3", "MUSEPOSE_S3__SECURE": "maybe",
           "KUBECONFIG": str(tmp_path / "absent")}
    done = subprocess.run([OPERATOR, "run", "-n", "default", "--standalone"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78  # EX_CONFIG: a crash-looping pod shows why
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    assert any("backoff_limit (MUSEPOSE_BACKOFF_LIMIT)" in line for line in lines)
    assert any("pending_timeout_seconds (MUSEPOSE_PENDING_TIMEOUT_SECONDS)" in line
               and "30" in line for line in lines)
    assert any("s3.secure (MUSEPOSE_S3__SECURE)" in line for line in lines)
    assert "Traceback" not in done.stderr
