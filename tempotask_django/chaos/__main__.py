import sys

from tempotask_django.chaos.cli import main

sys.exit(main())
