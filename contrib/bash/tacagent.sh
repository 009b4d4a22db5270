# /etc/profile.d/tacagent.sh: TACACS+ authorization and accounting of every command typed in an
# interactive bash (docs/bash.md). Source it from /etc/bash.bashrc as well, so that interactive shells that
# are not login shells get it too.
#
# It loads the tacagent_hook builtin (no process per command) and sets a DEBUG trap under extdebug: a
# command runs only when the trap says so. Without the builtin it falls back to `tacagent authorize` (one
# process per command, authorization only). Settings come from /etc/tacagent/bash.conf (root's file, never
# the environment):
#   socket=/run/tacagent/tacagent.sock   the agent's local API
#   builtin=/usr/lib/tacagent/tacagent_hook.so
#   timeout_ms=5000                       bounds each request to the agent
#   fallback_group=                       a local group whose members may run commands when no TACACS+
#                                         server (or no agent) answers; empty: nobody (deny)
#   daemon_uid=                           the agent's uid when it does not run as root
#   cli=/usr/sbin/tacagent                the fallback
#   accounting_ack=                       when the agent answers a START or STOP (docs/bash.md): empty or
#                                         durable: once its spool has fsynced it; queued: once the spool
#                                         holds it, before the commit; delivered: once a server took it
# This file only ever adds the hook: it returns early when bash is not interactive or the hook is in place.

[ -n "${BASH_VERSION-}" ] || return 0
case $- in *i*) ;; *) return 0 ;; esac
# In place already (sourced from both profile and bashrc): the trap is ours and extdebug is on.
if shopt -q extdebug && [[ $(trap -p DEBUG) == *tacagent* ]]; then return 0; fi

__tacagent_setup() {
	local conf=/etc/tacagent/bash.conf
	local socket=/run/tacagent/tacagent.sock builtin=/usr/lib/tacagent/tacagent_hook.so timeout_ms=5000
	local fallback_group= daemon_uid= cli=/usr/sbin/tacagent acct_ack= k v owner
	if [[ -f $conf ]]; then
		# Root's file only: anyone else's could open the door.
		owner=$(stat -Lc '%u %a' -- "$conf" 2>/dev/null)
		if [[ $owner =~ ^0\ [0-7]?[0-7][0145][0145]$ ]]; then
			while IFS='=' read -r k v; do
				case $k in
				socket) socket=$v ;; builtin) builtin=$v ;; timeout_ms) timeout_ms=$v ;;
				fallback_group) fallback_group=$v ;; daemon_uid) daemon_uid=$v ;; cli) cli=$v ;;
				accounting_ack) acct_ack=$v ;;
				esac
			done <"$conf"
		else
			echo "tacagent: $conf is not root's or is writable by others: ignored" >&2
		fi
	fi
	local priv=${TACACS_PRIV_LVL:-1} tty rem=${SSH_CONNECTION%% *}
	[[ $priv =~ ^([0-9]|1[0-5])$ ]] || priv=1
	tty=$(tty 2>/dev/null) || tty=
	[[ $timeout_ms =~ ^[0-9]+$ ]] || timeout_ms=5000
	[[ $daemon_uid =~ ^[0-9]*$ ]] || daemon_uid=
	[[ $acct_ack =~ ^(queued|durable|delivered)$ ]] || acct_ack=

	local hook
	if enable -f "$builtin" tacagent_hook 2>/dev/null; then
		printf -v hook 'tacagent_hook -s %q -t %q -p %q -g %q -T %q -r %q%s%s -- "$?" "${PIPESTATUS[@]}"' \
			"$socket" "$timeout_ms" "$priv" "$fallback_group" "${tty#/dev/}" "$rem" \
			"${daemon_uid:+ -d $daemon_uid}" "${acct_ack:+ -a $acct_ack}"
	else
		echo "tacagent: the tacagent_hook builtin is not available ($builtin); using $cli for each command" >&2
		local user
		user=$(id -un)
		printf -v hook '__tacagent_cli %q %q %q %q %q %q' "$cli" "$socket" "$user" "$priv" "$fallback_group" \
			"$daemon_uid"
	fi
	__TACAGENT_HOOK=$hook
}

# __tacagent_esc writes $2 into the variable named $1 as an AV pair can carry it (printable US-ASCII, RFC
# 8907 section 3.7): other bytes become \xHH and a backslash \\, as the builtin does.
__tacagent_esc() {
	local LC_ALL=C s=$2 out= c i
	if [[ $s != *[![:print:]]* && $s != *\\* ]]; then
		printf -v "$1" '%s' "$s"
		return
	fi
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		if [[ $c == \\ ]]; then out+='\\'
		elif [[ $c == [[:print:]] ]]; then out+=$c
		else printf -v c '\\x%02x' "'$c"; out+=${c: -4}
		fi
	done
	printf -v "$1" '%s' "$out"
}

# __tacagent_cli is the hook without the builtin: the typed words (split at blanks, not expanded),
# the command resolved as bash would, asked with `tacagent authorize`. Exit 1 (FAIL) is final; only an
# error may fall back to the group.
__tacagent_cli() {
	local cli=$1 socket=$2 user=$3 priv=$4 group=$5 duid=$6 c=$BASH_COMMAND cmd t a e
	local -a w args
	if ! shopt -q extdebug || [[ $- != *T* ]]; then
		shopt -s extdebug
		set -o functrace
		echo "tacagent: extdebug or functrace was turned off; it is back on" >&2
		return 1
	fi
	case $c in '(('* | '[['* | 'for '* | 'case '* | 'select '*) return 0 ;; esac
	read -ra w <<<"${c%%$'\n'*}"
	while ((${#w[@]})) && [[ ${w[0]} =~ ^[A-Za-z_][A-Za-z0-9_]*(\[.*\])?\+?= ]]; do w=("${w[@]:1}"); done
	((${#w[@]})) || return 0
	t=$(type -t -- "${w[0]}")
	case $t in
	file) cmd=$(type -P -- "${w[0]}") ;;
	*) cmd=${w[0]} ;;
	esac
	[[ $cmd == */* && $cmd != /* ]] && cmd=$PWD/$cmd
	if [[ $t == builtin && ( $cmd == trap || $cmd == enable || $cmd == tacagent_hook ) ]]; then
		for a in "${w[@]:1}"; do
			[[ $cmd == trap && ( ${w[1]} == -p || ${w[1]} == -l ) ]] && break
			if [[ ${a,,} == *debug* || $a == *'$'* || ( $cmd == enable && $a == -*[ndf]* ) ]]; then
				echo "tacagent: $cmd: denied: the DEBUG trap is the command authorization hook" >&2
				return 1
			fi
		done
	fi
	__tacagent_esc cmd "$cmd"
	for a in "${w[@]:1}"; do __tacagent_esc e "$a"; args+=("$e"); done
	"$cli" --socket "$socket" ${duid:+--daemon-uid "$duid"} authorize --user "$user" --priv-lvl "$priv" \
		-- "$cmd" "${args[@]}" >/dev/null
	case $? in
	0) return 0 ;;
	1) return 1 ;;
	esac
	if [[ -n $group ]] && id -Gn | tr ' ' '\n' | grep -qxF -- "$group"; then
		echo "tacagent: $cmd: no answer from the agent; allowed for group $group" >&2
		return 0
	fi
	echo "tacagent: $cmd: denied: no answer from the agent" >&2
	return 1
}

__tacagent_setup
unset -f __tacagent_setup
readonly -f __tacagent_cli __tacagent_esc
readonly __TACAGENT_HOOK
# Last: from here on every command, these included, goes through the hook.
shopt -s extdebug
set -o functrace
trap -- "$__TACAGENT_HOOK" DEBUG
