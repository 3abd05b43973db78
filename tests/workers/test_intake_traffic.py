"""A job's images and its policy's traffic section reach the rollout's spec at submit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.workers.conftest import DEMO_POLICY, job
from workers.errors import InvalidJobError
from workers.intake import Intake
from workers.spec import RolloutTraffic
from workers.store import MemoryStateStore

ROUTED = DEMO_POLICY.replace("name: demo", "name: routed") + (
    "traffic:\n  router: nginx_ingress\n  ingress: storefront\n"
    "  version_label: app.kubernetes.io/version\n"
)


def test_the_policys_router_is_snapshotted_with_names_resolved_for_the_app(
    intake: Intake, memory_store: MemoryStateStore, policy_dir: Path
) -> None:
    (policy_dir / "routed.yaml").write_text(ROUTED)
    submitted = intake.submit(job(policy="routed", platform="kubernetes"), "alice")
    spec = memory_store.load(submitted.rollout_id).state.spec
    assert spec.traffic == RolloutTraffic(
        router="nginx_ingress",
        route="checkout",
        ingress="storefront",
        stable_service="checkout",
        canary_service="checkout-canary",
        version_label="app.kubernetes.io/version",
    )

    (policy_dir / "routed.yaml").write_text(ROUTED.replace("nginx_ingress", "gateway_api"))
    assert memory_store.load(submitted.rollout_id).state.spec.traffic.router == "nginx_ingress"


def test_a_policy_without_a_traffic_section_follows_replica_counts(
    intake: Intake, memory_store: MemoryStateStore
) -> None:
    submitted = intake.submit(job(), "alice")
    traffic = memory_store.load(submitted.rollout_id).state.spec.traffic
    assert traffic.router == "replicas" and traffic.stable_service == "checkout"


TARGETED = DEMO_POLICY.replace("name: demo", "name: aimed").replace(
    "strategy:\n  type: canary\n",
    "strategy:\n  type: targeted\n  match: [{region: KR}]\n  analyze: {duration: 10s}\n",
)


def test_a_targeted_policy_without_a_router_is_refused_on_kubernetes_only(
    intake: Intake, memory_store: MemoryStateStore, policy_dir: Path
) -> None:
    (policy_dir / "aimed.yaml").write_text(TARGETED)
    with pytest.raises(InvalidJobError, match=r"set traffic\.router to gateway_api or nginx_ing"):
        intake.submit(job(policy="aimed", platform="kubernetes"), "alice")
    local = job(policy="aimed", platform="local", image="svc --port {port}")
    for accepted in (job(policy="aimed"), local):  # observe moves nothing; local is NGINX
        submitted = intake.submit(accepted, "alice")
        assert memory_store.load(submitted.rollout_id).state.spec.strategy == "targeted"
    (policy_dir / "aimed.yaml").write_text(TARGETED + "traffic: {router: gateway_api}\n")
    submitted = intake.submit(job(policy="aimed", platform="kubernetes", version="v3"), "alice")
    assert memory_store.load(submitted.rollout_id).state.spec.traffic.router == "gateway_api"


def test_images_by_container_reach_the_spec(intake: Intake, memory_store: MemoryStateStore) -> None:
    submitted = intake.submit(
        job(image="r.example/checkout:2", images={"proxy": "r.example/envoy:1.30"}), "alice"
    )
    spec = memory_store.load(submitted.rollout_id).state.spec
    assert spec.image == "r.example/checkout:2"
    assert spec.images_map == {"proxy": "r.example/envoy:1.30"}


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ({"Proxy": "r.example/envoy:1"}, "container name 'Proxy' is not a DNS-1123 label"),
        ({"proxy": "r.example/envoy 1"}, "image 'r.example/envoy 1' of container 'proxy'"),
        ({"proxy": ""}, "image '' of container 'proxy'"),
    ],
)
def test_bad_images_are_refused_naming_the_container(images: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        job(images=images)
