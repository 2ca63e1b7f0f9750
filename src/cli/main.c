/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "cli.h"

int
main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
