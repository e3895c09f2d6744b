from pip_91n.cli import main

raise SystemExit(main())
