"""Container environment and command lines, resolved with the kubelet's rules."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

Obj = dict[str, Any]
# (namespace, name) → data, or None when the object does not exist. Secret data is decoded.
Lookup = Callable[[str, str], "Mapping[str, str] | None"]

LOOPBACK = "127.0.0.1"

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(Exception):
    """The container cannot start yet (kubelet: CreateContainerConfigError); retried."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubelet's $(VAR) expansion: defined variables are substituted, $$ escapes, others stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def decode_secret(data: Mapping[str, str | bytes] | None) -> dict[str, str]:
    """Secret .data values are base64; processes see them decoded, as a kubelet gives them."""
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def field_ref(pod: Obj, path: str) -> str:
    """The downward API (fieldRef) for the fields a process may ask for."""
    meta, spec = pod["metadata"], pod["spec"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        # Every process shares the host's loopback: that is where peers reach it.
        "status.podIP": LOOPBACK,
        "status.podIPs": LOOPBACK,
        "status.hostIP": LOOPBACK,
        "status.hostIPs": LOOPBACK,
    }
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef {path!r}")
    return str(simple[path])


_DIVISOR_UNITS = {"": 1, "1": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_DIVISOR_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _quantity(q: str) -> float:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q))
    if not m or m.group(2) not in _DIVISOR_UNITS:
        raise ContainerConfigError(f"cannot parse quantity {q!r}")
    return float(m.group(1)) * _DIVISOR_UNITS[m.group(2)]


def resource_field_ref(container: Obj, ref: Obj) -> str:
    """resourceFieldRef: a limit or request, rounded up in units of the divisor."""
    kind, _, name = ref["resource"].partition(".")
    value = (container.get("resources") or {}).get(kind, {}).get(name)
    if value is None:
        # kubelet falls back to node allocatable; kwok nodes are large, report 0 = unknown.
        return "0"
    divisor = _quantity(ref.get("divisor", "1"))
    return str(max(1, -(-_quantity(value) // divisor)).__int__())


def container_env(
    pod: Obj,
    container: Obj,
    base: Mapping[str, str],
    configmap: Lookup,
    secret: Lookup,
) -> dict[str, str]:
    """The process environment: base, then envFrom, then env (later wins), like a kubelet."""
    ns = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, lookup in (("configMapRef", configmap), ("secretRef", secret)):
            ref = source.get(kind)
            if ref is None:
                continue
            data = lookup(ns, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f"{kind} {ns}/{ref['name']} not found")
            for key, value in data.items():
                env[prefix + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        vf = var["valueFrom"]
        if "fieldRef" in vf:
            env[name] = field_ref(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            env[name] = resource_field_ref(container, vf["resourceFieldRef"])
        else:
            kind, lookup = (
                ("configMapKeyRef", configmap)
                if "configMapKeyRef" in vf
                else ("secretKeyRef", secret)
            )
            ref = vf.get(kind)
            if ref is None:
                raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(vf)}")
            data = lookup(ns, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(
                    f"env {name}: {kind} {ns}/{ref['name']}[{ref['key']}] not found"
                )
            env[name] = data[ref["key"]]
    return env


def command_line(
    container: Obj, env: Mapping[str, str], entrypoints: Mapping[str, list[str]]
) -> list[str]:
    """command + args, $(VAR)-expanded; no command means the image's entrypoint."""
    command = list(container.get("command") or [])
    if not command:
        image = container.get("image", "").rsplit("/", 1)[-1].split("@")[0].split(":")[0]
        if image not in entrypoints:
            raise ContainerConfigError(
                f"container {container['name']!r} has no command and image "
                f"{container.get('image')!r} "
                "has no known entrypoint (harness config `entrypoints`)"
            )
        command = list(entrypoints[image])
    return [expand(a, env) for a in command + list(container.get("args") or [])]
