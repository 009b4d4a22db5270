#!/bin/bash
# runs with loginuid already set by the parent
/bin/echo "$(printf 'caf\xc3\xa9')" 'it''s "quoted"' 'tab	here' >/dev/null
/bin/true "$(head -c 9000 /dev/zero | tr '\0' y)" short >/dev/null
/bin/true $(seq 1 300) >/dev/null
env FOO=1 /bin/true >/dev/null
su nobody -s /bin/true -c true
/bin/false
exit 0
