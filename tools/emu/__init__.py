"""The simulated world around the seal firmware: routes, driving, GNSS, scenarios, clocks.

- ``routes``:   shipped routes (``tools/routes/*.geojson``) and GeoJSON/GPX loading, a measured polyline
- ``driver``:   a truck driving a route at a speed profile with stops (border queue, rest)
- ``gnss``:     an NMEA 0183 generator (RMC/GGA/GSA) with noise, checksum errors, no-fix, jumps
- ``replay``:   recorded NMEA logs fed epoch by epoch
- ``clock``:    a virtual clock with a timer queue
- ``scenario``: the scenario file format (docs/scenarios.md) and its loader
- ``expect``:   checking a run's operator events against a scenario's expectations
- ``world``:    one seal's surroundings (inputs, battery, coverage) and the in-process seal fleet
- ``sim``:      ``navseal simulate``: whole chain in one process on virtual time
- ``emulator``: ``navseal emulate``: real time, real broker or serial pty, fleet mode
"""
