from sgdepth_pkd.cli import main

raise SystemExit(main())
