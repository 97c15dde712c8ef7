package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// EnvPrefix prefixes every environment variable: OMLCRM_LOG_LEVEL sets log.level.
const EnvPrefix = "OMLCRM"

// flagKeys maps the common flag names (RegisterFlags) to their configuration keys.
// Load binds any of them that the FlagSet defines, so a subcommand may define only some.
var flagKeys = map[string]string{
	"log-level":       "log.level",
	"log-format":      "log.format",
	"http-listen":     "http.listen",
	"asterisk-source": "asterisk.source",
}

// ConfigFlag is the name of the flag holding the configuration file path.
const ConfigFlag = "config"

// RegisterFlags adds the common flags to fs: --config and the flags that override
// log.level, log.format, http.listen and asterisk.source. Secrets have no flag: a flag
// value is visible in the process list.
func RegisterFlags(fs *pflag.FlagSet) {
	d := Default()
	fs.String(ConfigFlag, "", "YAML configuration file (keys: see oml-crm.example.yaml; env OMLCRM_* overrides it, flags override both)")
	fs.String("log-level", d.Log.Level, "log level: trace|debug|info|warn|error|disabled (log.level)")
	fs.String("log-format", d.Log.Format, "log format: auto|json|console (log.format)")
	fs.String("http-listen", d.HTTP.Listen, "host:port of the HTTP server (http.listen)")
	fs.String("asterisk-source", d.Asterisk.Source, "event source: ami|ari (asterisk.source)")
}

// Load builds the configuration from the defaults, the YAML file at path (none when path
// is empty), OMLCRM_* environment variables and the flags of flags (may be nil) that were
// set on the command line, in that increasing precedence. Keys in the file that oml-crm
// does not know are errors naming the file, line and key; they come back together with
// every Validate problem of the rest of the configuration (a Problems error), so one
// run shows everything to fix. Otherwise Load does not Validate.
//
// delivery.postgres_url, when empty after loading, is filled with database.url.
func Load(path string, flags *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	defaults := map[string]any{}
	collectLeaves(reflect.ValueOf(Default()).Elem(), "", defaults)
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	// Keys oml-crm does not know and values of the wrong type, from the file and the
	// environment: reported together, each naming where it comes from.
	var unknown Problems
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		// Unknown keys do not stop loading: the rest is decoded and validated too, so
		// the admin sees every problem of the file in one go.
		if err := checkFileKeys(path, data, defaults); err != nil && !errors.As(err, &unknown) {
			return nil, err // not YAML, or not a mapping: nothing more to say
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("parse config file %s: %w", path, err)
		}
	}

	unknown = append(unknown, checkEnv(os.Environ(), defaults)...)
	if hasTypeProblem(unknown) {
		// Decoding would only repeat them, without file lines.
		return nil, unknown
	}

	if flags != nil {
		for name, key := range flagKeys {
			if f := flags.Lookup(name); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, fmt.Errorf("bind flag --%s: %w", name, err)
				}
			}
		}
	}

	cfg := &Config{}
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.TextUnmarshallerHookFunc(),
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
		stringToIntSlice,
	))
	if err := v.Unmarshal(cfg, hook); err != nil {
		return nil, fmt.Errorf("decode configuration: %w", err)
	}
	if cfg.Delivery.PostgresURL == "" {
		cfg.Delivery.PostgresURL = cfg.Database.URL
	}
	if cfg.Delivery.Sites == nil {
		cfg.Delivery.Sites = map[string]DeliverySite{}
	}
	if len(unknown) > 0 {
		var invalid Problems
		if errors.As(cfg.Validate(), &invalid) {
			unknown = append(unknown, invalid...)
		}
		return nil, unknown
	}
	return cfg, nil
}

// Keys returns every configuration key, sorted (delivery.sites stands for its
// delivery.sites.<id>.signing_secret entries).
func Keys() []string {
	m := map[string]any{}
	collectLeaves(reflect.ValueOf(Default()).Elem(), "", m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EnvName returns the environment variable that sets key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

var durationType = reflect.TypeFor[time.Duration]()

// collectLeaves records every leaf key of the struct value v with its value.
func collectLeaves(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			collectLeaves(fv, key, out)
			continue
		}
		out[key] = fv.Interface()
	}
}

// siteKeys are the keys allowed under delivery.sites.<id>.
var siteKeys = map[string]bool{"signing_secret": true, "webhook_secrets": true, "call_end": true}

// checkFileKeys reports every key of the YAML document that is not a configuration key.
func checkFileKeys(path string, data []byte, leaves map[string]any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the configuration must be a mapping of keys", path, root.Line)
	}
	// Section prefixes (log, asterisk, asterisk.ami, …) are valid intermediate keys.
	sections := map[string]bool{}
	for k := range leaves {
		parts := strings.Split(k, ".")
		for i := 1; i < len(parts); i++ {
			sections[strings.Join(parts[:i], ".")] = true
		}
	}
	var probs Problems
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			key := strings.ToLower(kn.Value)
			if prefix != "" {
				key = prefix + "." + key
			}
			pos := fmt.Sprintf("%s:%d", path, kn.Line)
			switch {
			case key == "delivery.sites":
				if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
					continue
				}
				if vn.Kind != yaml.MappingNode {
					probs = append(probs, Problem{Pos: pos, Key: key, Message: "must be a mapping of site id to settings"})
					continue
				}
				for j := 0; j+1 < len(vn.Content); j += 2 {
					id, sv := vn.Content[j], vn.Content[j+1]
					if sv.Kind != yaml.MappingNode {
						probs = append(probs, Problem{Pos: fmt.Sprintf("%s:%d", path, id.Line), Key: key + "." + id.Value, Message: "must be a mapping (signing_secret, webhook_secrets, call_end)"})
						continue
					}
					for k := 0; k+1 < len(sv.Content); k += 2 {
						if sk := sv.Content[k]; !siteKeys[sk.Value] {
							probs = append(probs, Problem{Pos: fmt.Sprintf("%s:%d", path, sk.Line), Key: key + "." + id.Value + "." + sk.Value, Message: "unknown key"})
						}
					}
				}
			case sections[key]:
				if vn.Kind == yaml.MappingNode {
					walk(vn, key)
				} else if !(vn.Kind == yaml.ScalarNode && vn.Tag == "!!null") {
					probs = append(probs, Problem{Pos: pos, Key: key, Message: "must be a mapping of keys"})
				}
			default:
				def, ok := leaves[key]
				if !ok {
					probs = append(probs, Problem{Pos: pos, Key: key, Message: "unknown key" + suggest(key, leaves)})
				} else if msg := checkNodeType(vn, def); msg != "" {
					probs = append(probs, Problem{Pos: pos, Key: key, Message: msg, wrongType: true})
				}
			}
		}
	}
	walk(root, "")
	if len(probs) > 0 {
		return probs
	}
	return nil
}

// suggest names the closest known key, for typos.
func suggest(key string, leaves map[string]any) string {
	best, bestD := "", 4
	for k := range leaves {
		if d := editDistance(key, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Problem is one configuration error, naming its key.
type Problem struct {
	Pos     string // "file:line" when the problem comes from the file, "environment" for OMLCRM_* variables, else ""
	Key     string // e.g. asterisk.ami.address
	Message string // never quotes a secret

	wrongType bool // a value that cannot be decoded into the key's type
}

func (p Problem) Error() string {
	if p.Pos != "" {
		return p.Pos + ": " + p.Key + ": " + p.Message
	}
	return p.Key + ": " + p.Message
}

// Problems is every problem found at once; it is the error returned by Validate and by
// Load for unknown keys. Use errors.As to get at the list.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.Is/As.
func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// checkNodeType returns why the YAML value n cannot be decoded into a key whose default
// is def, or "". Strings (secrets included) accept any scalar, so a message never quotes
// a secret.
func checkNodeType(n *yaml.Node, def any) string {
	_, isList := def.([]string)
	if _, ints := def.([]int); ints {
		isList = true
	}
	_, isSites := def.(map[string]DeliverySite)
	switch {
	case isSites:
		return "" // checked key by key by checkFileKeys
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return ""
	case isList:
		if n.Kind == yaml.MappingNode {
			return "must be a list (or a comma-separated string)"
		}
		return ""
	case n.Kind != yaml.ScalarNode:
		return "must be a single value, not a list or mapping"
	}
	return checkScalarType(n.Value, n.Tag == "!!int", def)
}

// checkScalarType returns why the text v cannot be decoded into a key whose default is
// def, or "". isInt says the YAML value was a plain integer (accepted for durations and
// sizes, as the decoder does).
func checkScalarType(v string, isInt bool, def any) string {
	switch def.(type) {
	case bool:
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Sprintf("%q is not a boolean (true or false)", v)
		}
	case int, int64:
		if _, err := strconv.ParseInt(v, 0, 64); err != nil {
			return fmt.Sprintf("%q is not a whole number", v)
		}
	case time.Duration:
		if _, err := time.ParseDuration(v); err != nil && !isInt {
			return fmt.Sprintf("%q is not a duration (e.g. 500ms, 10s, 2m, 1h)", v)
		}
	case ByteSize:
		if _, err := ParseByteSize(v); err != nil && !isInt {
			return fmt.Sprintf("%q is not a size (e.g. 65536, 64KiB, 1MiB)", v)
		}
	}
	return ""
}

// checkEnv reports OMLCRM_* variables of environ that look like a misspelt configuration
// key (within the did-you-mean distance of one) and variables of known keys whose value
// has the wrong type. Other OMLCRM_* variables, far from every key, are left alone: they
// are not meant for the configuration (the test suite's OMLCRM_TEST_PG, for one).
func checkEnv(environ []string, leaves map[string]any) Problems {
	byEnv := make(map[string]string, len(leaves))
	for k := range leaves {
		byEnv[EnvName(k)] = k
	}
	var probs Problems
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		key, known := byEnv[name]
		if !known {
			if best := closestEnv(name, byEnv); best != "" {
				probs = append(probs, Problem{Pos: "environment", Key: name,
					Message: fmt.Sprintf("unknown variable (did you mean %s?)", best)})
			}
			continue
		}
		if value == "" {
			continue // an empty variable is not set (the file or the default applies)
		}
		if msg := checkScalarType(value, false, leaves[key]); msg != "" {
			probs = append(probs, Problem{Pos: "environment", Key: name, Message: msg + " (" + key + ")", wrongType: true})
		}
	}
	sort.Slice(probs, func(i, j int) bool { return probs[i].Key < probs[j].Key })
	return probs
}

// closestEnv is the known variable nearest to name, within the did-you-mean distance.
func closestEnv(name string, byEnv map[string]string) string {
	best, bestD := "", 4
	for e := range byEnv {
		if d := editDistance(name, e); d < bestD || d == bestD && e < best {
			best, bestD = e, d
		}
	}
	return best
}

func hasTypeProblem(ps Problems) bool {
	for _, p := range ps {
		if p.wrongType {
			return true
		}
	}
	return false
}

// stringToIntSlice decodes "3,7" (an environment variable) into []int{3, 7}; YAML lists
// arrive as lists and are left alone.
func stringToIntSlice(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeOf([]int(nil)) {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []int{}, nil
	}
	parts := strings.Split(s, ",")
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = strings.TrimSpace(p)
	}
	return out, nil // weakly typed decoding turns each into an int, naming a bad entry
}
