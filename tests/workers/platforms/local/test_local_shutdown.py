"""shutdown() stops everything a state directory knows, by PID; what register refuses."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.workers.platforms.local.conftest import LocalApps, gone
from workers.actions import EnsureCanary, SetTraffic
from workers.platforms import PlatformError
from workers.platforms.local import LocalPlatform
from workers.platforms.local.process import free_port


def test_shutdown_leaves_no_process_behind(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path / "local")
    apps = LocalApps(platform)
    app = apps.register("search", replicas=1)
    rollout = apps.rollout(app, "v2")
    apps.apply(rollout, EnsureCanary(), SetTraffic(50))
    instances = platform.status("shop", app).pids()
    master = json.loads((tmp_path / "local" / "nginx" / "router.json").read_text())["master"]
    assert len(instances) == 2 and not gone({*instances, master["pid"]})
    platform.shutdown()
    assert gone({*instances, master["pid"]})
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{apps.ports[app]}/", trust_env=False)
    assert json.loads(platform.targets_file().read_text()) == []
    with pytest.raises(PlatformError, match="not registered"):
        platform.status("shop", app)
    platform.shutdown()  # again: nothing left to stop, no error


def test_a_stable_version_that_cannot_start_is_refused_at_register(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path / "local")
    try:
        with pytest.raises(PlatformError, match=r"exited: .*not-a-program"):
            platform.register(
                "shop", "broken", listen_port=free_port(), version="v1",
                command="/nonexistent/not-a-program --port {port}",
            )  # fmt: skip
        with pytest.raises(PlatformError, match=r"\{port\} placeholder"):
            platform.register(
                "shop", "broken", listen_port=free_port(), version="v1", command="sleep 60"
            )
    finally:
        platform.shutdown()


def test_without_nginx_register_says_how_to_install_it(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path / "local", nginx="nginx-that-is-not-installed")
    with pytest.raises(PlatformError, match=r"install-system-packages\.sh nginx"):
        platform.register("shop", "web", listen_port=free_port(), version="v1",
                          command="serve --port {port}")  # fmt: skip
    assert not (tmp_path / "local" / "logs").exists()  # nothing was started
