"""The local demo (`make run`): a dev tool outside the operator layers, like localcluster."""
