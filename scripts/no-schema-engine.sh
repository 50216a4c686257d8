#!/bin/sh
# Stand-in for Prisma's native schema engine on machines that cannot download
# it (see prisma.config.ts). `prisma generate` never calls it; anything that
# does (migrate, db push) must fail loudly rather than pretend to succeed.
echo "prisma: the native schema engine is not installed on this machine; use 'payment migrate' to apply prisma/migrations" >&2
exit 1
