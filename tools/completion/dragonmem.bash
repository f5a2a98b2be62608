# bash completion for dragonmem(1): commands, their options, pool names (from /dev/shm)
# and allocation types. Installed by `meson install` into bash-completion's directory.

_dragonmem_pools() {
    local object
    for object in /dev/shm/dragonmem.*; do
        [ -e "$object" ] && printf '%s\n' "${object#/dev/shm/dragonmem.}"
    done
}

_dragonmem() {
    local cur prev words cword
    _init_completion 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    }
    local commands="create attach alloc free ls dump serialize destroy write read check info copy clear hash equal stat serve"
    local global="--pretty --lock-timeout --version -V --help"
    local command="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --lock-timeout) ((i++)) ;;
        -*) ;;
        *) command=${words[i]}; break ;;
        esac
    done

    case $prev in
    --to | --with) mapfile -t COMPREPLY < <(compgen -W "$(_dragonmem_pools)" -- "$cur"); return ;;
    --mem-type) mapfile -t COMPREPLY < <(compgen -W "shm hugepage" -- "$cur"); return ;;
    --svg) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    --type) mapfile -t COMPREPLY < <(compgen -W "data channel channel_buffer bootstrap" -- "$cur"); return ;;
    --size | --min-block | --max-allocations | --uid | --mode | --prealloc | --count | --timeout | \
        --lock-timeout | --offset | --length | --id | --serial | --env | --start | --stop | --with-id | --numa-node | \
        --interval | --listen)
        return ;;
    esac

    if [ -z "$command" ]; then
        mapfile -t COMPREPLY < <(compgen -W "$commands $global" -- "$cur")
        return
    fi
    local options
    case $command in
    create) options="--size --uid --min-block --max-allocations --mode --prealloc --reserve --numa-node --mem-type" ;;
    attach) options="--env" ;;
    alloc) options="--serial --size --type --timeout --count --serialized --jsonl" ;;
    free) options="--serial --type --all --serialized --jsonl" ;;
    ls) options="--serial --type --serialized --jsonl --table" ;;
    dump) options="--serial --id --hex --raw --serialized --jsonl --table --svg" ;;
    serialize) options="--serial --id" ;;
    destroy) options="--serial --all-mine --orphaned --force --dry-run" ;;
    write) options="--serial --offset --timeout" ;;
    read) options="--serial --offset --length --timeout" ;;
    serve) options="--listen --quiet" ;;
    check) options="--serial" ;;
    info) options="--serial --table" ;;
    stat) options="--serial --interval --count" ;;
    copy) options="--serial --to --timeout" ;;
    clear) options="--serial --start --stop" ;;
    hash) options="--serial" ;;
    equal) options="--serial --with --with-id" ;;
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$options --pretty --lock-timeout --help" -- "$cur")
    elif [ "$command" != attach ] && [ "$command" != serve ]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_dragonmem_pools)" -- "$cur")
    fi
}
complete -F _dragonmem dragonmem
