"""The local test environment: a real control plane, MinIO and a test kubelet.

Binaries are built once from the Go module proxy by ``build-binaries.sh`` and cached in
``$MUSEPOSE_CACHE/bin``. ``python -m tests.harness up|down|status`` runs it for humans;
``tests/conftest.py`` runs it for pytest.
"""
