"""The user-facing tools on top of the library: the ``pgrad`` command (:mod:`.cli`), grids of
runs (:mod:`.compare`), learning curves (:mod:`.plot`) and videos (:mod:`.video`). The core
(``pgrad.*`` outside this package) never imports them."""
