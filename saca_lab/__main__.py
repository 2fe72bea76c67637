from saca_lab.cli import main

raise SystemExit(main())
