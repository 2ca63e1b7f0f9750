# SPDX-License-Identifier: LGPL-2.1-or-later
# bash completion for hotplugctl(1)                        -*- shell-script -*-
#
# Completes global options, command groups and verbs, each verb's options
# and option values, VM names (from `hotplugctl --json vm list` when hotplugd
# answers) and QMP socket paths (direct mode, or when no daemon answers),
# device ids (from the VM's `device list`) and host PCI addresses.
#
# COMPREPLY=($(compgen ...)) is the usual completion idiom: words here never
# hold spaces.
# shellcheck disable=SC2207

# Query timeout: completion must never hang on a daemon or a QMP socket that
# does not answer (a QMP socket serves one client at a time).
_hotplugctl_timeout=2

# Run hotplugctl with the --socket of the line being completed.
_hotplugctl_run()
{
    local -a cmd=(hotplugctl)
    [[ -n $_hotplugctl_socket ]] && cmd+=(--socket "$_hotplugctl_socket")
    if type timeout &>/dev/null; then
        timeout "$_hotplugctl_timeout" "${cmd[@]}" "$@" 2>/dev/null
    else
        "${cmd[@]}" "$@" 2>/dev/null
    fi
}

# The VM names hotplugd knows (nothing when it does not answer).
_hotplugctl_vm_names()
{
    _hotplugctl_run --json vm list |
        grep -o '"name":"[^"]*"' | sed 's/^"name":"//; s/"$//'
}

# Directories and UNIX sockets under the word being completed.
_hotplugctl_sockets()
{
    local cur=$1 f
    local -a found=()
    compopt -o filenames 2>/dev/null
    while IFS= read -r f; do
        if [[ -d $f ]]; then
            found+=("$f/")
        elif [[ -S $f ]]; then
            found+=("$f")
        fi
    done < <(compgen -f -- "$cur")
    if ((${#found[@]} == 1)) && [[ ${found[0]} == */ ]]; then
        compopt -o nospace 2>/dev/null
    fi
    COMPREPLY+=("${found[@]}")
}

# A VM argument: names from the daemon, socket paths otherwise (and always
# when the word holds a '/').  $2: "names" (daemon only) or "any" (a name
# or a QMP socket path, direct mode).
_hotplugctl_vm()
{
    local cur=$1 want=${2:-any} names
    if [[ $cur != */* ]]; then
        names=$(_hotplugctl_vm_names)
        if [[ -n $names ]]; then
            COMPREPLY+=($(compgen -W "$names" -- "$cur"))
            return
        fi
    fi
    [[ $want != names ]] && _hotplugctl_sockets "$cur"
}

# Device ids of VM $2 (from `device list`, `memory list` or `disk list` $3).
_hotplugctl_device_ids()
{
    local cur=$1 vm=$2 group=${3:-device} ids
    [[ -z $vm ]] && return
    ids=$(_hotplugctl_run --json "$group" list "$vm" |
        grep -o '"id":"[^"]*"' | sed 's/^"id":"//; s/"$//')
    COMPREPLY+=($(compgen -W "$ids" -- "$cur"))
}

# Host PCI addresses from sysfs ($HOTPLUG_SYSFS_ROOT, else /sys).
_hotplugctl_pci_addrs()
{
    local cur=$1 root=${HOTPLUG_SYSFS_ROOT:-/sys} d
    local -a addrs=()
    for d in "$root"/bus/pci/devices/*; do
        [[ -e $d ]] && addrs+=("${d##*/}")
    done
    COMPREPLY+=($(compgen -W "${addrs[*]}" -- "$cur"))
}

# Resolve a group or verb typed as a unique prefix, as hotplugctl does.
_hotplugctl_match()
{
    local word=$1 c match=''
    shift
    for c in "$@"; do
        [[ $c == "$word" ]] && { echo "$c"; return; }
        if [[ $c == "$word"* ]]; then
            [[ -n $match ]] && return   # ambiguous
            match=$c
        fi
    done
    echo "$match"
}

_hotplugctl()
{
    local cur prev words cword
    if type _init_completion &>/dev/null; then
        _init_completion -n : || return
    else
        COMPREPLY=()
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local groups="vm device vcpu memory disk hostdev ops events"
    local global_opts="--socket --json -v --verbose -h --help --version"
    local unplug_opts="--timeout --retry --retry-interval --no-wait"
    local _hotplugctl_socket=${HOTPLUGD_SOCKET:-}

    # Global options, up to the command.
    local i=1 group='' verb='' vi=0
    while ((i < cword)); do
        case ${words[i]} in
            --socket)
                _hotplugctl_socket=${words[i + 1]}
                ((i += 2))
                continue
                ;;
            --socket=*)
                _hotplugctl_socket=${words[i]#--socket=}
                ;;
            -*) ;;
            *) break ;;
        esac
        ((i++))
    done

    if ((i >= cword)); then
        # Completing a global option, its value, or the command.
        if [[ $prev == --socket ]]; then
            _hotplugctl_sockets "$cur"
            return
        fi
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$groups" -- "$cur"))
        fi
        return
    fi

    # shellcheck disable=SC2086
    group=$(_hotplugctl_match "${words[i]}" $groups)
    [[ -z $group ]] && return
    local verbs=''
    case $group in
        vm) verbs="list add remove info" ;;
        device) verbs="add del list" ;;
        vcpu) verbs="list set enable disable" ;;
        memory) verbs="add del list" ;;
        disk) verbs="add del list" ;;
        hostdev) verbs="add del" ;;
    esac
    if [[ -n $verbs ]]; then
        if ((i + 1 == cword)); then
            COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
            return
        fi
        # shellcheck disable=SC2086
        verb=$(_hotplugctl_match "${words[i + 1]}" $verbs)
        [[ -z $verb ]] && return
        vi=$((i + 2))
    else
        vi=$((i + 1))
    fi

    # The verb's options; the ones that take a value.
    local opts='' valued=''
    case $group/$verb in
        device/del | vcpu/set | vcpu/disable | memory/del | disk/del | hostdev/del)
            opts=$unplug_opts
            valued="--timeout --retry --retry-interval"
            ;;
        vcpu/enable)
            opts="--node"
            valued="--node"
            ;;
        memory/add)
            opts="--node --id"
            valued="--node --id"
            ;;
        disk/add)
            opts="--id --format --readonly --iothreads --queues"
            valued="--id --format --iothreads --queues"
            ;;
        hostdev/add)
            opts="--id"
            valued="--id"
            ;;
        events/)
            opts="--follow --since --vm --device --kind"
            valued="--since --vm --device --kind"
            ;;
    esac
    opts+=" --help"

    # The value of an option.
    case $prev in
        --format)
            COMPREPLY=($(compgen -W "raw qcow2" -- "$cur"))
            return
            ;;
        --kind)
            COMPREPLY=($(compgen -W "vm request attempt outcome qemu-event" -- "$cur"))
            return
            ;;
        --vm)
            [[ $group == events ]] && _hotplugctl_vm "$cur" names
            return
            ;;
    esac
    if [[ -n $prev && " $valued " == *" $prev "* ]]; then
        return # a number, an id, a seq: nothing to offer
    fi

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi

    # Positional arguments: count them, skipping options and their values.
    local -a pos=()
    local j=$vi
    while ((j < cword)); do
        if [[ ${words[j]} == -* ]]; then
            [[ " $valued " == *" ${words[j]} "* ]] && ((j++))
        else
            pos+=("${words[j]}")
        fi
        ((j++))
    done
    local n=${#pos[@]}

    case $group/$verb in
        vm/list | events/) ;;
        vm/add)
            ((n == 1)) && _hotplugctl_sockets "$cur"
            ;;
        vm/remove)
            ((n == 0)) && _hotplugctl_vm "$cur" names
            ;;
        ops/)
            ((n == 0)) && _hotplugctl_vm "$cur" names
            ;;
        vm/info | device/add | device/list | disk/list)
            ((n == 0)) && _hotplugctl_vm "$cur" any
            ;;
        device/del)
            if ((n == 0)); then
                _hotplugctl_vm "$cur" any
            elif ((n == 1)); then
                _hotplugctl_device_ids "$cur" "${pos[0]}" device
            fi
            ;;
        memory/del)
            if ((n == 0)); then
                _hotplugctl_vm "$cur" any
            elif ((n == 1)); then
                _hotplugctl_device_ids "$cur" "${pos[0]}" memory
            fi
            ;;
        disk/del)
            if ((n == 0)); then
                _hotplugctl_vm "$cur" any
            elif ((n == 1)); then
                _hotplugctl_device_ids "$cur" "${pos[0]}" disk
            fi
            ;;
        hostdev/del)
            if ((n == 0)); then
                _hotplugctl_vm "$cur" any
            elif ((n == 1)); then
                _hotplugctl_device_ids "$cur" "${pos[0]}" device
            fi
            ;;
        disk/add)
            if ((n == 0)); then
                _hotplugctl_vm "$cur" any
            elif ((n == 1)); then
                compopt -o filenames 2>/dev/null
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            ;;
        hostdev/add)
            if ((n == 0)); then
                _hotplugctl_vm "$cur" any
            elif ((n == 1)); then
                _hotplugctl_pci_addrs "$cur"
                # PCI addresses hold ':', a word break for readline
                type __ltrim_colon_completions &>/dev/null &&
                    __ltrim_colon_completions "$cur"
            fi
            ;;
        vcpu/* | memory/*)
            ((n == 0)) && _hotplugctl_vm "$cur" any
            ;;
    esac
} &&
    complete -F _hotplugctl hotplugctl

# ex: filetype=sh
