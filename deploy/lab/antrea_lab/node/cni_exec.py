"""Run CNI plugins the way kubelet + libcni do (CNI spec 1.0.0, plus STATUS/GC of 1.1).

A network configuration list is loaded from the conf dir (lexically first ``*.conflist``,
``*.conf`` or ``*.json``; a single-plugin ``.conf`` is wrapped into a list). ADD runs the
plugins in order, chaining each result as the next plugin's ``prevResult``; DEL runs them in
reverse with the cached ADD result; CHECK runs in order with it. ADD results are cached on
disk per (network name, container id, ifname), like libcni, so DEL works after a restart
and with the configuration the attachment was created with.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("antrea.lab.cni")

CACHE_KIND = "cniCacheV1"
DEFAULT_TIMEOUT = 60.0
# Kubernetes' conventional "no limit" burst for the bandwidth capability (bits).
UNLIMITED_BURST = 2**31 - 1


class CNIError(Exception):
    """A plugin failed; carries the spec's error fields (code, msg, details)."""

    def __init__(
        self, code: int, msg: str, details: str = "", plugin: str = "", command: str = ""
    ) -> None:
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin
        self.command = command
        text = f"plugin type={plugin!r} failed ({command}): {msg}" if plugin else msg
        if details:
            text += f": {details}"
        super().__init__(text)


class CNITimeout(CNIError):
    """A plugin did not finish within the timeout and was killed."""


class NoNetworkConfig(CNIError):
    """No usable network configuration in the conf dir (kubelet: NetworkPluginNotReady)."""


@dataclass
class NetworkConfigList:
    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    disable_check: bool = False
    disable_gc: bool = False
    raw: bytes = b""
    source: str = ""

    @classmethod
    def parse(cls, data: bytes, source: str = "") -> NetworkConfigList:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise CNIError(6, f"failed to decode network config {source}", str(exc)) from exc
        if not isinstance(doc, dict):
            raise CNIError(7, f"network config {source} is not a JSON object")
        if "plugins" not in doc:
            # A single-plugin .conf: wrap it the way libcni's ConfListFromConf does.
            if "type" not in doc:
                raise CNIError(7, f"network config {source} has neither plugins nor type")
            doc = {
                "cniVersion": doc.get("cniVersion", "1.0.0"),
                "name": doc.get("name", ""),
                "plugins": [doc],
            }
        plugins = doc.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise CNIError(7, f"network config {source} has no plugins")
        for plugin in plugins:
            if not isinstance(plugin, dict) or not plugin.get("type"):
                raise CNIError(7, f"network config {source}: a plugin has no type")
        name = doc.get("name")
        if not name:
            raise CNIError(7, f"network config {source} has no name")
        return cls(
            name=name,
            cni_version=str(doc.get("cniVersion", "1.0.0")),
            plugins=plugins,
            disable_check=bool(doc.get("disableCheck", False)),
            disable_gc=bool(doc.get("disableGC", False)),
            raw=json.dumps(doc).encode(),
            source=source,
        )

    def plugin_stdin(
        self,
        plugin: Mapping[str, Any],
        prev_result: Mapping[str, Any] | None,
        capability_args: Mapping[str, Any],
    ) -> dict[str, Any]:
        conf = copy.deepcopy(dict(plugin))
        conf["name"] = self.name
        conf["cniVersion"] = self.cni_version
        if prev_result is not None:
            conf["prevResult"] = prev_result
        # runtimeConfig only carries the capabilities this plugin declares.
        declared = plugin.get("capabilities") or {}
        runtime = {k: v for k, v in capability_args.items() if declared.get(k)}
        if runtime:
            conf["runtimeConfig"] = {**conf.get("runtimeConfig", {}), **runtime}
        return conf


def find_config_file(conf_dir: Path) -> Path | None:
    """The lexically first *.conflist/*.conf/*.json, as kubelet's CNI loader picks it."""
    if not conf_dir.is_dir():
        return None
    files = sorted(
        p for p in conf_dir.iterdir() if p.suffix in (".conflist", ".conf", ".json") and p.is_file()
    )
    return files[0] if files else None


def load_config(conf_dir: Path) -> NetworkConfigList:
    path = find_config_file(conf_dir)
    if path is None:
        raise NoNetworkConfig(7, f"no network config found in {conf_dir}")
    return NetworkConfigList.parse(path.read_bytes(), str(path))


@dataclass
class Attachment:
    """Who a CNI call is for: the runtime arguments of one pod sandbox."""

    container_id: str
    netns: str  # path, e.g. /run/netns/<name>; may be "" for DEL
    ifname: str = "eth0"
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    capability_args: dict[str, Any] = field(default_factory=dict)

    def cni_args(self) -> str:
        # IgnoreUnknown keeps plugins such as host-local from rejecting K8S_* keys.
        pairs = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.pod_namespace),
            ("K8S_POD_NAME", self.pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", self.container_id),
            ("K8S_POD_UID", self.pod_uid),
        ]
        return ";".join(f"{k}={v}" for k, v in pairs)


def capability_args_for_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """portMappings from containers' hostPorts, bandwidth from the pod annotations.

    ``pod`` is a Pod as a plain dict (API field names, camelCase).
    """
    caps: dict[str, Any] = {}
    mappings = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                mapping = {
                    "hostPort": int(port["hostPort"]),
                    "containerPort": int(port["containerPort"]),
                    "protocol": str(port.get("protocol") or "TCP").lower(),
                }
                if port.get("hostIP"):
                    mapping["hostIP"] = port["hostIP"]
                mappings.append(mapping)
    if mappings:
        caps["portMappings"] = mappings
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    bandwidth: dict[str, int] = {}
    for key, prefix in (
        ("kubernetes.io/ingress-bandwidth", "ingress"),
        ("kubernetes.io/egress-bandwidth", "egress"),
    ):
        if key in annotations:
            bandwidth[f"{prefix}Rate"] = parse_quantity_bits(annotations[key])
            bandwidth[f"{prefix}Burst"] = UNLIMITED_BURST
    if bandwidth:
        caps["bandwidth"] = bandwidth
    return caps


_SUFFIXES = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}


def parse_quantity_bits(value: str) -> int:
    """A Kubernetes quantity such as ``10M`` or ``1Gi`` as an integer."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * _SUFFIXES[suffix])
    return int(float(text))


def pod_ips(result: Mapping[str, Any], ifname: str = "eth0") -> list[str]:
    """Addresses (without prefix length) of the sandbox interface, IPv4 first."""
    interfaces = result.get("interfaces") or []
    ips = []
    for ip in result.get("ips") or []:
        idx = ip.get("interface")
        if idx is not None and 0 <= idx < len(interfaces):
            iface = interfaces[idx]
            if not iface.get("sandbox") or iface.get("name") not in (ifname, None):
                continue
        ips.append(str(ip["address"]).split("/")[0])
    return sorted(ips, key=lambda a: ":" in a)


class ResultCache:
    """On-disk results, one file per attachment, shaped like libcni's cniCacheV1."""

    def __init__(self, cache_dir: Path) -> None:
        self.dir = cache_dir

    def _path(self, network: str, container_id: str, ifname: str) -> Path:
        return self.dir / "results" / f"{network}-{container_id}-{ifname}"

    def save(
        self, conf: NetworkConfigList, att: Attachment, result: Mapping[str, Any]
    ) -> None:
        path = self._path(conf.name, att.container_id, att.ifname)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "kind": CACHE_KIND,
            "containerId": att.container_id,
            "config": base64.b64encode(conf.raw).decode(),
            "ifName": att.ifname,
            "networkName": conf.name,
            "cniArgs": [kv.split("=", 1) for kv in att.cni_args().split(";")],
            "capabilityArgs": att.capability_args,
            "result": result,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)

    def load(self, network: str, container_id: str, ifname: str) -> dict[str, Any] | None:
        path = self._path(network, container_id, ifname)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("corrupt CNI cache entry path=%s", path)
            return None

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        self._path(network, container_id, ifname).unlink(missing_ok=True)

    def entries(self) -> list[dict[str, Any]]:
        root = self.dir / "results"
        if not root.is_dir():
            return []
        out = []
        for path in sorted(root.iterdir()):
            if path.suffix == ".tmp":
                continue
            try:
                out.append(json.loads(path.read_text()))
            except (ValueError, FileNotFoundError):
                # Half-written, or removed by a concurrent DEL since the listing.
                continue
        return out

    def find(self, container_id: str, ifname: str = "eth0") -> dict[str, Any] | None:
        """The cache entry of an attachment whatever network it was made on."""
        for entry in self.entries():
            if entry.get("containerId") == container_id and entry.get("ifName") == ifname:
                return entry
        return None


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return (0,)


class CNIExecutor:
    def __init__(
        self,
        conf_dir: Path,
        bin_dirs: Sequence[Path],
        cache_dir: Path,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.conf_dir = Path(conf_dir)
        self.bin_dirs = [Path(d) for d in bin_dirs]
        self.cache = ResultCache(Path(cache_dir))
        self.timeout = timeout

    # -- config -------------------------------------------------------------------------
    def network_ready(self) -> bool:
        try:
            load_config(self.conf_dir)
        except CNIError:
            return False
        return True

    def load(self) -> NetworkConfigList:
        return load_config(self.conf_dir)

    def find_plugin(self, plugin_type: str) -> Path:
        if "/" in plugin_type:
            raise CNIError(7, f"invalid plugin type {plugin_type!r}")
        for d in self.bin_dirs:
            path = d / plugin_type
            if path.is_file() and os.access(path, os.X_OK):
                return path
        dirs = ":".join(str(d) for d in self.bin_dirs)
        raise CNIError(50, f"failed to find plugin {plugin_type!r} in path [{dirs}]")

    # -- commands -----------------------------------------------------------------------
    def add(self, att: Attachment, conf: NetworkConfigList | None = None) -> dict[str, Any]:
        conf = conf or self.load()
        result: dict[str, Any] | None = None
        start = time.monotonic()
        for plugin in conf.plugins:
            stdin = conf.plugin_stdin(plugin, result, att.capability_args)
            result = self._run(plugin["type"], "ADD", att, stdin)
            if result is None:
                raise CNIError(6, "plugin returned no result", plugin=plugin["type"], command="ADD")
        assert result is not None
        self.cache.save(conf, att, result)
        log.info(
            "CNI ADD done network=%s container=%s ips=%s ms=%.1f",
            conf.name, att.container_id, pod_ips(result, att.ifname),
            (time.monotonic() - start) * 1000,
        )
        return result

    def delete(self, att: Attachment, conf: NetworkConfigList | None = None) -> None:
        """DEL in reverse order; by default with the config the ADD was made with."""
        cached = self.cache.find(att.container_id, att.ifname)
        if conf is None:
            if cached is not None:
                conf = NetworkConfigList.parse(base64.b64decode(cached["config"]), "cache")
                if not att.capability_args:
                    att.capability_args = cached.get("capabilityArgs") or {}
            else:
                conf = self.load()
        prev = None
        entry = self.cache.load(conf.name, att.container_id, att.ifname)
        if entry is not None:
            prev = entry.get("result")
        for plugin in reversed(conf.plugins):
            stdin = conf.plugin_stdin(plugin, prev, att.capability_args)
            self._run(plugin["type"], "DEL", att, stdin)
        self.cache.delete(conf.name, att.container_id, att.ifname)
        log.info("CNI DEL done network=%s container=%s", conf.name, att.container_id)

    def check(self, att: Attachment, conf: NetworkConfigList | None = None) -> None:
        conf = conf or self.load()
        if conf.disable_check or _version_tuple(conf.cni_version) < (0, 4, 0):
            return
        entry = self.cache.load(conf.name, att.container_id, att.ifname)
        if entry is None:
            raise CNIError(3, f"no cached result for container {att.container_id}")
        for plugin in conf.plugins:
            stdin = conf.plugin_stdin(plugin, entry["result"], att.capability_args)
            self._run(plugin["type"], "CHECK", att, stdin)

    def status(self, conf: NetworkConfigList | None = None) -> None:
        """CNI 1.1 STATUS; a no-op for older configs, which do not define it."""
        conf = conf or self.load()
        if _version_tuple(conf.cni_version) < (1, 1, 0):
            return
        for plugin in conf.plugins:
            stdin = conf.plugin_stdin(plugin, None, {})
            self._run(plugin["type"], "STATUS", None, stdin)

    def gc(self, valid: Sequence[Attachment], conf: NetworkConfigList | None = None) -> None:
        """CNI 1.1 GC: plugins release what is not in ``valid``; drops stale cache entries."""
        conf = conf or self.load()
        keep = {(a.container_id, a.ifname) for a in valid}
        for entry in self.cache.entries():
            key = (entry.get("containerId"), entry.get("ifName"))
            if entry.get("networkName") == conf.name and key not in keep:
                self.cache.delete(conf.name, key[0], key[1])
        if conf.disable_gc or _version_tuple(conf.cni_version) < (1, 1, 0):
            return
        attachments = [{"containerID": a.container_id, "ifname": a.ifname} for a in valid]
        for plugin in conf.plugins:
            stdin = conf.plugin_stdin(plugin, None, {})
            stdin["cni.dev/valid-attachments"] = attachments
            self._run(plugin["type"], "GC", None, stdin)

    def version(self, plugin_type: str, cni_version: str = "1.0.0") -> dict[str, Any]:
        out = self._run(plugin_type, "VERSION", None, {"cniVersion": cni_version})
        return out or {}

    # -- process ------------------------------------------------------------------------
    def _run(
        self,
        plugin_type: str,
        command: str,
        att: Attachment | None,
        stdin: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        path = self.find_plugin(plugin_type)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_PATH": ":".join(str(d) for d in self.bin_dirs),
        }
        if att is not None:
            env.update(
                CNI_CONTAINERID=att.container_id,
                CNI_NETNS=att.netns,
                CNI_IFNAME=att.ifname,
                CNI_ARGS=att.cni_args(),
            )
        log.debug("exec plugin=%s command=%s", plugin_type, command)
        # Own session so a timeout kills the plugin and anything it forked.
        proc = subprocess.Popen(
            [str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(json.dumps(stdin).encode(), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise CNITimeout(
                5, f"timed out after {self.timeout:g}s", plugin=plugin_type, command=command
            ) from None
        if err.strip():
            log.debug("plugin=%s command=%s stderr=%s", plugin_type, command, err.decode()[-2000:])
        if proc.returncode != 0:
            raise self._error(plugin_type, command, proc.returncode, out, err)
        if command in ("DEL", "CHECK", "STATUS", "GC") or not out.strip():
            return None
        try:
            result = json.loads(out)
        except ValueError as exc:
            raise CNIError(
                6, "failed to decode plugin output", out.decode(errors="replace")[:500],
                plugin=plugin_type, command=command,
            ) from exc
        if not isinstance(result, dict):
            raise CNIError(6, "plugin output is not an object", plugin=plugin_type, command=command)
        return result

    @staticmethod
    def _error(plugin: str, command: str, rc: int, out: bytes, err: bytes) -> CNIError:
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "code" in doc:
            return CNIError(
                int(doc.get("code") or 0), str(doc.get("msg", "")), str(doc.get("details", "")),
                plugin=plugin, command=command,
            )
        text = (err or out).decode(errors="replace").strip()[-500:]
        return CNIError(999, f"exit status {rc}", text, plugin=plugin, command=command)
