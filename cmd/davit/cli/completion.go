package cli

import (
	"fmt"
	"io"

	urfave "github.com/urfave/cli/v2"
)

// bashCompletion asks davit itself for candidates (urfave/cli's
// --generate-bash-completion protocol), so stages and tasks come from the
// Deployfile in the current directory.
const bashCompletion = `# davit bash completion: source <(davit completion bash)
_davit_complete() {
  # bash splits words at ':' (COMP_WORDBREAKS), which would cut
  # deploy:check in two; read the command line itself instead.
  local line="${COMP_LINE:0:COMP_POINT}"
  local cur="${line##*[[:space:]]}"
  local -a words
  read -r -a words <<< "${line:0:${#line}-${#cur}}"
  local opts
  opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  # bash will put each reply in place of the part of cur after its last
  # ':', so drop what comes before it.
  if [[ "${cur}" == *:* && "${COMP_WORDBREAKS}" == *:* ]]; then
    local colon="${cur%"${cur##*:}"}"
    local i
    for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]="${COMPREPLY[i]#"${colon}"}"; done
  fi
}
complete -o bashdefault -o default -F _davit_complete davit
`

const zshCompletion = `#compdef davit
# davit zsh completion: source <(davit completion zsh)
autoload -U +X bashcompinit && bashcompinit
` + bashCompletion

func printCompletion(c *urfave.Context, w io.Writer) error {
	switch shell := c.Args().First(); shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	case "fish":
		s, err := c.App.ToFishCompletion()
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, s)
		return err
	default:
		return usageError(fmt.Errorf("completion: want bash, zsh or fish, not %q", shell))
	}
}

// completeStagesAndTasks prints, for the first word, the subcommands and
// the stages and tasks of the Deployfile in reach; after a stage or task,
// only tasks. Errors print nothing: a completion must never spill messages
// into the user's prompt.
func completeStagesAndTasks(c *urfave.Context, s *session) {
	first := c.NArg() == 0
	if first {
		for _, cmd := range c.App.Commands {
			if !cmd.Hidden {
				fmt.Fprintln(c.App.Writer, cmd.Name)
			}
		}
	}
	r, err := loadProject(c.Context, c, s, nil)
	if err != nil {
		return
	}
	p := r.Project()
	if first {
		for _, s := range p.Stages() {
			fmt.Fprintln(c.App.Writer, s)
		}
	}
	for _, t := range p.Registry().List() {
		fmt.Fprintln(c.App.Writer, t.Name)
	}
}
