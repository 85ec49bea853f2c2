# mxray.bash - bash completion for mxray: options, capture files, and each option's values.
# Installed as share/bash-completion/completions/mxray (bash-completion loads it on demand);
# or source it. Stands alone: it uses neither _init_completion nor _filedir.
# The options are those of src/main.c's getopt tables; tests/manpage.py checks it.

_mxray_opts='-r -f -c --since --until --flow
  --json --sensor --redis --redis-key --redis-list --redis-maxlen --redis-queue
  --html --html-diagrams --write-flows --streams --color --show-secrets --tls-keylog --tls-ca
  --hashes --extract --extract-max --extract-total --port --no-ndpi --failures --explain
  -q --quiet --progress --no-progress
  --max-flows --idle-timeout --memory --reasm-memory
  -j --workers
  -i -w -Z --no-promisc
  -h --help -V --version'

# _mxray_files CUR: capture files (by their usual names) and directories, as COMPREPLY.
_mxray_files()
{
    local f all
    COMPREPLY=()
    mapfile -t all < <(compgen -f -- "$1")
    for f in "${all[@]}"; do
        if [[ -d $f ]]; then
            COMPREPLY+=("$f")
        else
            case "$f" in
            *.pcap | *.pcapng | *.cap | *.gz | *.zst | *.xz) COMPREPLY+=("$f") ;;
            esac
        fi
    done
    compopt -o filenames 2>/dev/null
}

# The completion function: COMP_WORDS and COMP_CWORD in, COMPREPLY out.
_mxray()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    # --opt=value: bash splits it at '=' (COMP_WORDBREAKS) into --opt, =, value.
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
        prev=${COMP_WORDS[COMP_CWORD - 2]}
        [[ $prev == -* ]] || return 0 # the PORT of --port smtp=PORT
    fi
    COMPREPLY=()

    case "$prev" in
    --color)
        mapfile -t COMPREPLY < <(compgen -W 'auto always never' -- "$cur")
        return 0
        ;;
    --port)
        mapfile -t COMPREPLY < <(compgen -W 'smtp= pop3= imap= lmtp=' -- "$cur")
        compopt -o nospace 2>/dev/null
        return 0
        ;;
    --hashes)
        # A comma list: complete its last item.
        local head=
        [[ $cur == *,* ]] && head=${cur%,*},
        mapfile -t COMPREPLY < <(compgen -P "$head" -W 'md5 sha1 sha256 message body all none default' -- "${cur##*,}")
        compopt -o nospace 2>/dev/null
        return 0
        ;;
    -i)
        local ifs=
        [[ -d /sys/class/net ]] && ifs=$(command ls /sys/class/net 2>/dev/null)
        mapfile -t COMPREPLY < <(compgen -W "$ifs" -- "$cur")
        return 0
        ;;
    --extract | --streams | --write-flows)
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        compopt -o filenames 2>/dev/null
        return 0
        ;;
    -r)
        _mxray_files "$cur"
        return 0
        ;;
    --tls-ca)
        mapfile -t COMPREPLY < <(compgen -W 'none' -- "$cur"; compgen -f -- "$cur")
        compopt -o filenames 2>/dev/null
        return 0
        ;;
    --json | --html | -w | --tls-keylog)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        compopt -o filenames 2>/dev/null
        return 0
        ;;
    -Z)
        mapfile -t COMPREPLY < <(compgen -u -- "$cur")
        return 0
        ;;
    -f | -c | --since | --until | --flow | --sensor | --redis | --redis-key | --redis-maxlen | --redis-queue | \
        --html-diagrams | --extract-max | --extract-total | --max-flows | --idle-timeout | --memory | \
        --reasm-memory | -j | --workers)
        return 0 # a value of the user's own
        ;;
    esac

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$_mxray_opts" -- "$cur")
        return 0
    fi
    _mxray_files "$cur"
    if ((COMP_CWORD == 1)) && [[ audit == "$cur"* ]]; then
        COMPREPLY=(audit "${COMPREPLY[@]}")
    fi
    return 0
}
complete -F _mxray mxray
