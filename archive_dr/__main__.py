from archive_dr.cli import main

raise SystemExit(main())
