"""SPMD validation: run a plan's callable on the plan's mesh with JAX on CPU devices and check the sharding.

``case`` (pure) describes and statically checks what to run; ``launcher`` starts one JAX process per host
on 127.0.0.1 (JAX reads the virtual device count only at start-up, so every check runs in a child);
``worker`` is that child. It lives in the runtime package because the same check can run on the real
slice at start-up, and because it imports JAX, which the operator's pure layers must not.
"""
