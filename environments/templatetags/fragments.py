"""``{% fragment name fact ... %}…{% endfragment %}``: part of a template rendered once
and kept in the fragments cache under what it shows (environments/fragments.py), as a
view keeps its fragments. Every value the part shows must be among its facts; a CSRF
token inside stands as a placeholder in the cache and is this response's own on the
page. Nothing else of one request may be inside: a CSP nonce, were nonces turned on,
would be kept and served to everyone (the head's htmx script tag would carry one)."""

from django import template

from environments import fragments

register = template.Library()


class FragmentNode(template.Node):
    def __init__(self, nodelist, name, facts):
        self.nodelist = nodelist
        self.name = name
        self.facts = facts

    def render(self, context):
        request = context.get("request")
        if request is None:  # rendered outside a request (a server error page): as is
            return self.nodelist.render(context)
        facts = [fact.resolve(context) for fact in self.facts]
        return fragments.kept(self.name, facts, lambda: self._render(context), request)

    def _render(self, context):
        with context.push(csrf_token=fragments.CSRF_PLACEHOLDER):
            return self.nodelist.render(context)


@register.tag
def fragment(parser, token):
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("{% fragment %} takes a name and its facts")
    nodelist = parser.parse(("endfragment",))
    parser.delete_first_token()
    name = template.Variable(bits[1]).resolve({})  # a quoted name
    return FragmentNode(nodelist, name, [parser.compile_filter(bit) for bit in bits[2:]])
