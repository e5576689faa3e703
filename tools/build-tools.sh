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

# A wrapper module that `go get`s MODULE@VERSION, so the module's own replace lines do not stop the
# build, then builds PACKAGE with `-s -w` and LDFLAGS. HOOK, when given, runs after the `go get` with the
# wrapper directory as its argument and may append to $ldflags (from the resolved module graph).
# go_get_command NAME VERSION MODULE PACKAGE [LDFLAGS [HOOK]] -> builds $(dest NAME VERSION)
go_get_command() {
  local name=$1 version=$2 module=$3 pkg=$4 hook=${6:-} out; out=$(dest "$1" "$2")
  [ -x "$out" ] && { log "$name $version cached"; return; }
  log "$name $version: fetching and compiling"
  start_heartbeat "$name"
  local t0=$SECONDS d; d=$(wrapper "$name")
  local ldflags="-s -w${5:+ $5}"
  (cd "$d" && go mod init "datajax.dev/tools/$name" >/dev/null 2>&1 \
    && go get "$module@$version" >/dev/null 2>&1)
  [ -z "$hook" ] || "$hook" "$d"
  (cd "$d" && mkdir -p "$(dirname "$out")" \
    && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  stop_heartbeat
  log "$name built in $((SECONDS - t0)) s"
}

# kwok plays kubelet for Node objects it manages (sigs.k8s.io/kwok cmd/kwok).
build_kwok() {
  go_get_command kwok "$KWOK_VERSION" sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
}

build_etcd() {
  go_get_command etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
}

# helm's release build (its Makefile) sets the default Kubernetes version of `helm template` and
# `helm lint` from its client-go module v0.X.Y -> 1.X; without it helm assumes v1.20.0.
helm_kube_version() { # WRAPPER_DIR: appends to the caller's $ldflags
  local cg; cg=$(cd "$1" && go list -m -f '{{.Version}}' k8s.io/client-go)
  cg=${cg#v0.}; local k8s_minor=${cg%%.*}
  for vpkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $vpkg.k8sVersionMajor=1 -X $vpkg.k8sVersionMinor=$k8s_minor"
  done
  log "helm: default Kubernetes version v1.$k8s_minor (from its client-go)"
}

build_helm() {
  go_get_command helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm_kube_version
}

build_promtool() {
  # module v0.316.0 is Prometheus 3.16.0: what `promtool --version` should say
  local minor=${PROMETHEUS_MODULE_VERSION#v0.}; minor=${minor%%.*}
  local release="${minor:0:1}.$((10#${minor:1})).${PROMETHEUS_MODULE_VERSION##*.}"
  go_get_command promtool "$PROMETHEUS_MODULE_VERSION" github.com/prometheus/prometheus \
    github.com/prometheus/prometheus/cmd/promtool "-X github.com/prometheus/common/version.Version=$release"
}

# The version each tool is built at (tools/versions.env); the Kubernetes commands share one.
version_of() {
  case $1 in
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    promtool) echo "$PROMETHEUS_MODULE_VERSION" ;;
    *) echo "$KUBERNETES_VERSION" ;;
  esac
}

all_tools="etcd kube-apiserver kubectl kube-scheduler kube-controller-manager kwok helm promtool"
want=${*:-$all_tools}
for t in $want; do
  case " $all_tools " in *" $t "*) ;; *) echo "unknown tool $t" >&2; exit 2 ;; esac
done
t_all=$SECONDS
for t in $want; do
  "build_${t//-/_}"
done
# One directory of links that tests and people put on PATH (only for tools that are built).
link() { [ -x "$2" ] && ln -sfn "$2" "$bin/$1" || true; }
for t in $all_tools; do
  link "$t" "$(dest "$t" "$(version_of "$t")")"
done
log "tools ready in $bin ($((SECONDS - t_all)) s)"
