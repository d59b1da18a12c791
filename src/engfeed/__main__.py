from engfeed.cli import main

raise SystemExit(main())
