from skillsyncd.cli import main

raise SystemExit(main())
