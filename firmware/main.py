# main.py: runs at every reset, after boot.py. The seal's program is navseal_fw.app, flashed as
# bytecode like the rest of the package: compiling it here would cost the heap its parse tree at
# every boot. Faults inside it end in a recorded reboot (app.main), never a silent stop.
from navseal_fw.app import main

main()
