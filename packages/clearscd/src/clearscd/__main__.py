from clearscd.cli import main

raise SystemExit(main())
