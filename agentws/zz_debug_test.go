package agentws

import (
	"testing"

	"github.com/chromedp/chromedp"
)

func TestZZDebug(t *testing.T) {
	browser := newBrowser(t, true)
	run(t, browser, chromedp.Navigate("about:blank"))
	t.Log(evalJS[string](t, browser, `location.href`))
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	run(t, ctx, chromedp.Navigate("data:text/html,<p>hi</p>"))
	t.Log(evalJS[string](t, ctx, `location.href`))
}
