from semstereo.cli import main

raise SystemExit(main())
