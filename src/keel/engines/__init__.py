"""Where the heavy work runs: ``local`` (this process, the default) or ``ray`` (Ray Tune,
Ray Data and Ray Serve; the optional extra ``keel[ray]``). The local engine is the code in
keel.training and keel.serving itself; ``keel.engines.ray`` runs that same code on Ray.
Choose with ``--engine``, keel.yaml's ``engine:``, or KEEL_RAY_ADDRESS (see keel.config)."""
