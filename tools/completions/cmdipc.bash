# bash completion for cmdipc(1)                         -*- shell-script -*-
#
# Completes the sub-commands, each one's options (read from its --help, so
# they never drift), addresses (socket files, unix:// and tcp://), and the
# command ids a running hub or registry serves (`cmdipc list`, with a short
# timeout) where a COMMAND is expected. Installed by meson into
# $datadir/bash-completion/completions/cmdipc (bash-completion loads it on
# first use); without bash-completion: source it from ~/.bashrc.

_cmdipc_subcommands="hub list describe call wait emit listen serve keygen help"

# The options of a sub-command (or of cmdipc itself), from its --help.
_cmdipc_options() {
    local cmdipc=$1 sub=$2
    "$cmdipc" ${sub:+"$sub"} --help 2>/dev/null |
        grep -oE -- '(^|[ ,])--?[a-zA-Z][a-zA-Z-]*' | tr -d ' ,' | sort -u
}

# 0 when option $2 of sub-command $1 takes a value (what follows it is not
# to be completed as an operand).
_cmdipc_takes_value() {
    case $2 in
        -t | --timeout | --connect-timeout | -n | --count | -j | --jobs | --mode | \
            -c | --command | -d | --description | -s | --schema)
            case $1 in
                list | describe) [[ $2 != -s && $2 != --schema ]] ;;
                *) return 0 ;;
            esac
            ;;
        *) return 1 ;;
    esac
}

# Addresses: unix:// and tcp:// prefixes, socket files (and directories on
# the way to them), also after unix://.
_cmdipc_addresses() {
    local cur=$1 prefix="" path f
    if [[ $cur == unix://* ]]; then
        prefix=unix://
        path=${cur#unix://}
    elif [[ $cur == *://* ]]; then
        return
    else
        path=$cur
        COMPREPLY+=($(compgen -W "unix:// tcp://" -- "$cur"))
    fi
    while IFS= read -r f; do
        [[ -n $f ]] || continue
        if [[ -d $f ]]; then
            COMPREPLY+=("$prefix$f/")
        elif [[ -S $f ]]; then
            COMPREPLY+=("$prefix$f")
        fi
    done < <(compgen -f -- "$path")
    [[ ${#COMPREPLY[@]} -gt 0 ]] && compopt -o nospace 2>/dev/null
    return 0
}

# The command ids served at address $2 (nothing when it does not answer
# within a second).
_cmdipc_command_ids() {
    local cmdipc=$1 addr=$2
    "$cmdipc" list --no-header --connect-timeout 1 --timeout 1 ${addr:+"$addr"} \
        2>/dev/null | while read -r id _; do printf '%s\n' "$id"; done
}

_cmdipc() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local cmdipc=${COMP_WORDS[0]} sub="" i w
    local -a operands=()
    COMPREPLY=()
    # The sub-command, and the operands before the word being completed.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ -z $sub ]]; then
            [[ $w == -* ]] || sub=$w
            continue
        fi
        if [[ $w == -- ]]; then
            continue
        elif [[ $w == -* ]]; then
            _cmdipc_takes_value "$sub" "$w" && ((i++))
        else
            operands+=("$w")
        fi
    done
    if [[ -z $sub ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$(_cmdipc_options "$cmdipc")" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_cmdipc_subcommands" -- "$cur"))
        fi
        return 0
    fi
    if _cmdipc_takes_value "$sub" "$prev"; then
        return 0 # a duration, a count, ID=SHELL...: nothing to offer
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_cmdipc_options "$cmdipc" "$sub")" -- "$cur"))
        return 0
    fi
    if [[ $sub == keygen ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return 0
    fi
    if [[ $sub == help ]]; then
        [[ ${#operands[@]} -eq 0 ]] &&
            COMPREPLY=($(compgen -W "${_cmdipc_subcommands% help}" -- "$cur"))
        return 0
    fi
    # The address: the first operand, unless CMDIPC_ADDR gives it and the
    # word does not look like one.
    local addr=""
    if [[ ${#operands[@]} -gt 0 ]] &&
        [[ -z $CMDIPC_ADDR || ${operands[0]} == *://* || ${operands[0]} == /* ||
            ${operands[0]} == ./* || ${operands[0]} == ../* ]]; then
        addr=${operands[0]}
        operands=("${operands[@]:1}")
    elif [[ -z $CMDIPC_ADDR || $cur == *://* || $cur == /* || $cur == .* ]]; then
        _cmdipc_addresses "$cur"
        return 0
    fi
    case $sub in
        hub)
            _cmdipc_addresses "$cur"
            ;;
        call | describe)
            [[ ${#operands[@]} -eq 0 ]] &&
                COMPREPLY=($(compgen -W "$(_cmdipc_command_ids "$cmdipc" "$addr")" -- "$cur"))
            ;;
        wait)
            COMPREPLY=($(compgen -W "$(_cmdipc_command_ids "$cmdipc" "$addr")" -- "$cur"))
            ;;
    esac
    return 0
}

complete -F _cmdipc cmdipc
