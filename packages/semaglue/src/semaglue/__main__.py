from semaglue.cli import main

raise SystemExit(main())
