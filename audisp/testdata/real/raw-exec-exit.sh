#!/bin/bash
/nonexistent/cmd 2>/dev/null
/usr/bin/printf '%s\n' 'x' >/dev/null
(exec -a custom-argv0 /bin/true)
sleep 5 & p=$!; kill -TERM $p; wait $p
exit 7
