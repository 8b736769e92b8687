"""Settings of the harness: which pods it runs and how their processes are set up."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = REPO / "e2e" / ".run"

# Namespaces whose pods run as processes carry this label (the `namespace` fixture sets it).
NAMESPACE_LABEL = "jobfleet.dev/e2e"
# A pod annotated e2e.jobfleet.dev/simulate=kwok is left to kwok's simulated pod stages.
SIMULATE_ANNOTATION = "e2e.jobfleet.dev/simulate"
# Nodes that kwok simulates carry this annotation (kwokctl's default node selector).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def _default_bin_dirs() -> tuple[Path, ...]:
    # The checkout's venv first; then the interpreter running the harness, for a checkout
    # whose environment lives elsewhere (a CI image, a system-wide install).
    dirs = [REPO / ".venv" / "bin", Path(sys.executable).parent]
    return tuple(dict.fromkeys(d for d in dirs if d.is_dir()))


def _default_entrypoints() -> dict[str, list[str]]:
    # Images are never pulled: a container without `command` runs its image's entrypoint,
    # which for the project's images is one of the checkout's console scripts.
    return {
        "jobfleet-operator": ["jobfleet-operator"],
        "jobfleet-worker": ["jobfleet"],
        "jobfleet": ["jobfleet"],
    }


@dataclasses.dataclass
class HarnessConfig:
    """Everything the harness needs besides the cluster's kubeconfig."""

    kubeconfig: Path
    run_dir: Path = RUN_DIR
    # Only pods in namespaces matching this label selector run as processes; pods on kwok
    # nodes elsewhere are marked Running without a process (as kwok would do).
    namespace_selector: str = f"{NAMESPACE_LABEL}=true"
    # Directories searched first for a container's command: the checkout's venv, so the
    # `jobfleet`, `jobfleet-operator` and `python` entrypoints run this working tree.
    bin_dirs: tuple[Path, ...] = dataclasses.field(default_factory=_default_bin_dirs)
    # Prepended to PYTHONPATH, so test handler modules in the checkout import.
    source_root: Path = REPO
    # image name (last path segment, without tag) → entrypoint used when `command` is empty.
    entrypoints: dict[str, list[str]] = dataclasses.field(default_factory=_default_entrypoints)
    # Probes run at min(periodSeconds, this): the harness trades kubelet's 10 s default
    # for fast tests; thresholds are honoured as written.
    max_probe_period: float = 1.0
    # Crash-loop back-off: kubelet's 10 s → 5 min schedule, scaled down for tests.
    restart_backoff_initial: float = 1.0
    restart_backoff_max: float = 30.0
    # Lifetime of the service-account tokens handed to processes (refreshed at 80 %).
    token_seconds: int = 3600

    @property
    def logs_dir(self) -> Path:
        """Where each pod's processes write stdout/stderr: <ns>_<pod>.log."""
        return self.run_dir / "logs"

    @property
    def scrape_targets(self) -> Path:
        """Prometheus file_sd file listing every process pod's containers and their ports."""
        return self.run_dir / "scrape" / "pods.json"

    @property
    def pods_dir(self) -> Path:
        """Per-pod scratch space: kubeconfig, HOME, materialised volumes."""
        return self.run_dir / "pods"

    @property
    def procs_dir(self) -> Path:
        """One empty file per live process group, named by pgid, for crash-safe teardown."""
        return self.run_dir / "procs"

    def search_path(self) -> str:
        """PATH for pod processes: the checkout's venv first, then the system."""
        dirs = [str(d) for d in self.bin_dirs]
        return os.pathsep.join([*dirs, "/usr/local/bin", "/usr/bin", "/bin"])
