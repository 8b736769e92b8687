"""The operator's API credentials from a kubeconfig, read by the kubernetes loader itself."""

from __future__ import annotations

from typing import Any

import pytest
from jobfleet_operator.handlers import login_info
from jobfleet_operator.kube import Credentials, KubeConfigError, credentials_from
from kubernetes import client, config

PROXY = "http://proxy-user:pr0xy-s3cret@proxy.internal:3128"


def kubeconfig(**cluster: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443/", **cluster}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


def load(**cluster: Any) -> Credentials:
    cfg = client.Configuration()
    config.load_kube_config_from_dict(kubeconfig(**cluster), client_configuration=cfg)
    return credentials_from(cfg)


def test_server_and_token() -> None:
    creds = load()
    assert (creds.server, creds.proxy, creds.token()) == ("https://10.0.0.1:6443", None, "t0ken")


def test_proxy_url_reaches_our_client_and_kopfs() -> None:
    creds = load(**{"proxy-url": PROXY})
    assert creds.proxy == PROXY
    assert login_info(creds).proxy_url == PROXY
    assert "pr0xy-s3cret" not in repr(creds)


@pytest.mark.parametrize("proxy", ["socks5://proxy-user:pr0xy-s3cret@proxy:1080", "proxy:3128"])
def test_a_proxy_aiohttp_cannot_use_is_refused_without_echoing_it(proxy: str) -> None:
    with pytest.raises(KubeConfigError, match="must start with http:// or https://") as err:
        load(**{"proxy-url": proxy})
    assert "pr0xy" not in str(err.value) and "proxy:" not in str(err.value)


def test_tls_server_name_is_refused_rather_than_dropped() -> None:
    with pytest.raises(KubeConfigError, match="tls-server-name is not supported"):
        load(**{"tls-server-name": "kubernetes.internal"})
