# /etc/profile.d/tacagent.sh (package tacagent): TACACS+ authorization and accounting of every command of
# interactive bash shells (docs/bash.md, /usr/share/doc/tacagent). Off until /etc/tacagent/bash.conf
# exists: every command is denied when the agent cannot be asked (unless fallback_group allows it), so the
# package does not turn it on before the agent is configured. To turn it on, write bash.conf (root's,
# mode 0644; see /usr/share/doc/tacagent/examples/bash.conf) and add
# `. /etc/profile.d/tacagent.sh` to /etc/bash.bashrc for shells that are not login shells.
if [ -n "${BASH_VERSION-}" ] && [ -f /etc/tacagent/bash.conf ]; then
	. /usr/share/tacagent/bash/tacagent.sh
fi
