"""The Pod Security Standards, rule by rule, as checks of a pod spec (kubernetes.io/docs/concepts/
security/pod-security-standards). The API server's PodSecurity admission enforces the same rules;
the tests use both, so a failure names the rule and a misread of a rule is caught by the server.
"""

from __future__ import annotations

from typing import Any

# Baseline: capabilities a container may add; restricted: only NET_BIND_SERVICE.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", []), *pod.get("ephemeralContainers", [])]


def _sc(container: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = container.get("securityContext") or {}
    return found


def baseline_violations(pod: dict[str, Any]) -> list[str]:
    """Every baseline rule the pod spec breaks, one line each."""
    found = []
    psc = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"host namespaces: {field}")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess pod")
    found += [f"hostPath volume {v['name']}" for v in pod.get("volumes", []) if "hostPath" in v]
    for sysctl in psc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"unsafe sysctl {sysctl['name']}")
    contexts = [("pod", psc)]
    for c in _containers(pod):
        name, sc = c["name"], _sc(c)
        contexts.append((name, sc))
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{name}: HostProcess")
        added = set((sc.get("capabilities") or {}).get("add", []))
        if added - BASELINE_CAPABILITIES:
            found.append(f"{name}: adds capabilities {sorted(added - BASELINE_CAPABILITIES)}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount {sc['procMount']}")
    for where, sc in contexts:
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"{where}: seccomp Unconfined")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            found.append(f"{where}: AppArmor Unconfined")
        selinux = sc.get("seLinuxOptions") or {}
        if selinux.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
            found.append(f"{where}: SELinux type {selinux['type']}")
        if selinux.get("user") or selinux.get("role"):
            found.append(f"{where}: SELinux user/role set")
    return found


def restricted_container_violations(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    """The restricted rules that bind one container (pod-level settings count where the rule says)."""
    name, sc, psc = container["name"], _sc(container), pod.get("securityContext") or {}
    found = []
    if sc.get("allowPrivilegeEscalation") is not False:
        found.append(f"{name}: allowPrivilegeEscalation must be false")
    if sc.get("runAsNonRoot") is False or not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        found.append(f"{name}: runAsNonRoot must be true (pod or container)")
    if sc.get("runAsUser", psc.get("runAsUser")) == 0:
        found.append(f"{name}: runAsUser 0")
    seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost, is {seccomp}")
    caps = sc.get("capabilities") or {}
    if "ALL" not in caps.get("drop", []):
        found.append(f"{name}: capabilities must drop ALL")
    if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
        found.append(f"{name}: may add only NET_BIND_SERVICE")
    return found


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every restricted rule (baseline included) the pod spec breaks."""
    found = baseline_violations(pod)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if kinds - RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: type {sorted(kinds)} not allowed")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsUser") == 0:
        found.append("pod: runAsUser 0")
    for container in _containers(pod):
        found += restricted_container_violations(container, pod)
    return found
