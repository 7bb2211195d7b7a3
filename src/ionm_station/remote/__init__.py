"""Remote oversight over IEEE 11073 SDC (``sdc11073``): stations publish, a supervisor watches.

A station run with ``--publish-sdc`` serves an SDC provider (:mod:`.provider`) whose MDIB
(:mod:`.mdib`) mirrors the station's one state snapshot, its event log and its clean traces;
``ionm-station supervise`` (:mod:`.supervise`) discovers stations (:mod:`.discovery`) or connects
by address, follows each one (:mod:`.consumer`) and shows a wall of rooms (:mod:`.wall`, pure
Python; :mod:`.qt_wall`, the window). Transport is TLS with certificates (:mod:`.tls`). The
remote view is read-only: the MDIB has no operations.
"""

#: The port a station serves SDC on unless told otherwise (``run --sdc-port``).
DEFAULT_PORT = 6464
