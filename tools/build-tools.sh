#!/usr/bin/env bash
# Build the real control-plane and chart tooling from Go modules, once, into a cache outside the
# repository (so a fresh clone in another folder, as CI uses, finds them). A tool that is already
# built is not rebuilt. Prints progress and timings: a cold build takes many minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/versions.env
source "$here/versions.env"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/datajax-operator
bin=$cache/bin
work=$cache/build
mkdir -p "$bin" "$work"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# The long go builds print nothing for minutes: a line a minute tells a person (and CI) it is alive.
heartbeat_pid=
start_heartbeat() { # LABEL
  local label=$1 t0=$SECONDS
  ( while sleep 60; do log "$label: still building ($((SECONDS - t0)) s)"; done ) &
  heartbeat_pid=$!
}
stop_heartbeat() {
  if [ -n "$heartbeat_pid" ]; then
    kill "$heartbeat_pid" 2>/dev/null || true
    wait "$heartbeat_pid" 2>/dev/null || true
  fi
  heartbeat_pid=
}
trap '[ -z "$heartbeat_pid" ] || kill "$heartbeat_pid" 2>/dev/null || true' EXIT

# dest NAME VERSION -> path of the cached binary
dest() { echo "$bin/$1-$2/$1"; }

wrapper() { # NAME: a fresh wrapper module directory
  local d=$work/$1
  rm -rf "$d"; mkdir -p "$d"; echo "$d"
}

# A wrapper module for a command of k8s.io/kubernetes: its go.mod replaces every staging module
# (./staging/... in the release's own go.mod) by the published tag v0.<minor>.<patch>.
# kubernetes_command NAME PACKAGE -> builds $(dest NAME KUBERNETES_VERSION)
kubernetes_command() {
  local name=$1 pkg=$2 out; out=$(dest "$1" "$KUBERNETES_VERSION")
  [ -x "$out" ] && { log "$name $KUBERNETES_VERSION cached"; return; }
  log "$name $KUBERNETES_VERSION: fetching k8s.io/kubernetes (large)"
  start_heartbeat "$name"
  local t0=$SECONDS d; d=$(wrapper "$name")
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local staging_ver="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "module datajax.dev/tools/$name"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -nE 's#^[[:space:]]*(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\t\1 => \1 '"$staging_ver"'#p' "$gomod"
    echo ")"
  } > "$d/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$d/tools.go"
  (cd "$d" && go mod tidy >/dev/null 2>&1 || true; cd "$d" && go mod download)
  log "$name: compiling (several minutes)"
  local ldflags="-s -w"
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  # Without these, /version and `kubectl version` report v0.0.0 and version checks misbehave.
  for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $vpkg.gitVersion=$KUBERNETES_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
  done
  mkdir -p "$(dirname "$out")"
  (cd "$d" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  stop_heartbeat
  log "$name built in $((SECONDS - t0)) s"
}

build_kube_apiserver() { kubernetes_command kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver; }

# kubectl's main package lives in k8s.io/kubernetes (the k8s.io/kubectl module holds only its library).
build_kubectl() { kubernetes_command kubectl k8s.io/kubernetes/cmd/kubectl; }

# The scheduler and the controller manager: the same module and wrapper recipe as the API server, so the
# second and third builds reuse most of the Go build cache (docs/control-plane.md in ../shared).
build_kube_scheduler() { kubernetes_command kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler; }
build_kube_controller_manager() {
  kubernetes_command kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
}

# kwok plays kubelet for Node objects it manages (sigs.k8s.io/kwok cmd/kwok): a wrapper module that
# `go get`s it, as for etcd, so kwok's own replace lines do not stop the build.
build_kwok() {
  local out; out=$(dest kwok "$KWOK_VERSION")
  [ -x "$out" ] && { log "kwok $KWOK_VERSION cached"; return; }
  log "kwok $KWOK_VERSION: fetching and compiling"
  start_heartbeat kwok
  local t0=$SECONDS d; d=$(wrapper kwok)
  (cd "$d" && go mod init datajax.dev/tools/kwok >/dev/null 2>&1 \
    && go get "sigs.k8s.io/kwok@$KWOK_VERSION" >/dev/null 2>&1 \
    && mkdir -p "$(dirname "$out")" \
    && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
      -o "$out.tmp" sigs.k8s.io/kwok/cmd/kwok)
  mv "$out.tmp" "$out"
  stop_heartbeat
  log "kwok built in $((SECONDS - t0)) s"
}

build_etcd() {
  local out; out=$(dest etcd "$ETCD_VERSION")
  [ -x "$out" ] && { log "etcd $ETCD_VERSION cached"; return; }
  log "etcd $ETCD_VERSION: fetching and compiling"
  start_heartbeat etcd
  local t0=$SECONDS d; d=$(wrapper etcd)
  (cd "$d" && go mod init datajax.dev/tools/etcd >/dev/null 2>&1 \
    && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 \
    && mkdir -p "$(dirname "$out")" \
    && go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3)
  mv "$out.tmp" "$out"
  stop_heartbeat
  log "etcd built in $((SECONDS - t0)) s"
}

build_helm() {
  local out; out=$(dest helm "$HELM_VERSION")
  [ -x "$out" ] && { log "helm $HELM_VERSION cached"; return; }
  log "helm $HELM_VERSION: fetching and compiling"
  start_heartbeat helm
  local t0=$SECONDS d; d=$(wrapper helm)
  (cd "$d" && go mod init datajax.dev/tools/helm >/dev/null 2>&1 \
    && go get "helm.sh/helm/v3@$HELM_VERSION" >/dev/null 2>&1)
  # helm's release build (its Makefile) sets the default Kubernetes version of `helm template` and
  # `helm lint` from its client-go module v0.X.Y -> 1.X; without it helm assumes v1.20.0.
  local cg; cg=$(cd "$d" && go list -m -f '{{.Version}}' k8s.io/client-go)
  cg=${cg#v0.}; local k8s_minor=${cg%%.*}
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for vpkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld+=" -X $vpkg.k8sVersionMajor=1 -X $vpkg.k8sVersionMinor=$k8s_minor"
  done
  log "helm: default Kubernetes version v1.$k8s_minor (from its client-go)"
  (cd "$d" && mkdir -p "$(dirname "$out")" \
    && go build -trimpath -ldflags "$ld" -o "$out.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$out.tmp" "$out"
  stop_heartbeat
  log "helm built in $((SECONDS - t0)) s"
}

build_promtool() {
  local out; out=$(dest promtool "$PROMETHEUS_MODULE_VERSION")
  [ -x "$out" ] && { log "promtool $PROMETHEUS_MODULE_VERSION cached"; return; }
  log "promtool $PROMETHEUS_MODULE_VERSION: fetching and compiling"
  start_heartbeat promtool
  local t0=$SECONDS d; d=$(wrapper promtool)
  # module v0.316.0 is Prometheus 3.16.0: what `promtool --version` should say
  local minor=${PROMETHEUS_MODULE_VERSION#v0.}; minor=${minor%%.*}
  local release="${minor:0:1}.$((10#${minor:1})).${PROMETHEUS_MODULE_VERSION##*.}"
  (cd "$d" && go mod init datajax.dev/tools/promtool >/dev/null 2>&1 \
    && go get "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION" >/dev/null 2>&1 \
    && mkdir -p "$(dirname "$out")" \
    && go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
      -o "$out.tmp" github.com/prometheus/prometheus/cmd/promtool)
  mv "$out.tmp" "$out"
  stop_heartbeat
  log "promtool built in $((SECONDS - t0)) s"
}

all_tools="etcd kube-apiserver kubectl kube-scheduler kube-controller-manager kwok helm promtool"
want=${*:-$all_tools}
for t in $want; do
  case $t in etcd|kube-apiserver|kubectl|kube-scheduler|kube-controller-manager|kwok|helm|promtool) ;; *) echo "unknown tool $t" >&2; exit 2 ;; esac
done
t_all=$SECONDS
for t in $want; do
  case $t in
    etcd) build_etcd ;;
    kube-apiserver) build_kube_apiserver ;;
    kubectl) build_kubectl ;;
    kube-scheduler) build_kube_scheduler ;;
    kube-controller-manager) build_kube_controller_manager ;;
    kwok) build_kwok ;;
    helm) build_helm ;;
    promtool) build_promtool ;;
  esac
done
# One directory of links that tests and people put on PATH (only for tools that are built).
link() { [ -x "$2" ] && ln -sfn "$2" "$bin/$1" || true; }
link etcd "$(dest etcd "$ETCD_VERSION")"
for k in kube-apiserver kubectl kube-scheduler kube-controller-manager; do
  link "$k" "$(dest "$k" "$KUBERNETES_VERSION")"
done
link kwok "$(dest kwok "$KWOK_VERSION")"
link helm "$(dest helm "$HELM_VERSION")"
link promtool "$(dest promtool "$PROMETHEUS_MODULE_VERSION")"
log "tools ready in $bin ($((SECONDS - t_all)) s)"
