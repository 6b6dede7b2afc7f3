"""navseal HIL bench: one scenario suite against the emulator or a real seal (docs/hil.md).

Entry points for test code: ``navseal.hil.dut.Dut``, ``navseal.hil.steps`` (activate,
deactivate, GnssFeed), ``navseal.hil.frames.EscortData``; benches in ``navseal.hil.emu`` and
``navseal.hil.serial_bench``; the pytest plugin is ``navseal.hil.plugin``. Modules are imported
where used, so ``import navseal.hil`` stays cheap (the plugin loads into every pytest run).
"""
