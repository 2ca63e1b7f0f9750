/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl's entry point: all of it is cli_main() in the library. */
#include "config.h"

#include "cli.h"

int
main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
