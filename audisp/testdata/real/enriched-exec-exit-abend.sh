#!/bin/bash
ls -l /tmp/auditcap >/dev/null
sh -c 'exit 3'
sleep 5 & kill -9 $!
sh -c 'kill -SEGV $$'
mysql --password=hunter2 -u admin -e 'select 1' 2>/dev/null
/bin/true --token hunter3 https://bob:hunter4@example.com/x
exit 0
