<?xml version="1.0" encoding="UTF-8"?>
<!--
  lookout feed stylesheet (XSLT 1.0, the version browsers implement).

  Feeds reference it with <?xml-stylesheet type="text/xsl" href=".../feed.xsl"?>, so a
  feed opened in a browser reads as a page instead of a wall of XML; feed readers
  ignore the instruction. It renders RSS 2.0 and Atom 1.0 alike.

  Item descriptions are escaped HTML inside the XML. XSLT 1.0 cannot parse HTML, and
  disable-output-escaping is not honoured by every browser (and would let a hostile
  summary run script), so descriptions are shown as text: tags are dropped, </p> and
  <br> become line breaks, and the five entities lookout's escaping writes are decoded.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">

  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="color-scheme" content="light dark"/>
        <title>
          <xsl:value-of select="rss/channel/title | atom:feed/atom:title"/>
          <xsl:text> (feed)</xsl:text>
        </title>
        <style>
          :root { color-scheme: light dark; --fg: #1b1d21; --muted: #5d6470; --bg: #ffffff;
            --card: #f4f5f7; --line: #dde0e5; --link: #0b57d0; }
          @media (prefers-color-scheme: dark) {
            :root { --fg: #e6e7ea; --muted: #a2a8b3; --bg: #15171a; --card: #1f2226;
              --line: #33373d; --link: #8ab4f8; }
          }
          * { box-sizing: border-box; }
          body { margin: 0; background: var(--bg); color: var(--fg);
            font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
          main { max-width: 46rem; margin: 0 auto; padding: 1rem; }
          h1 { font-size: 1.5rem; margin: 0.5rem 0 0.25rem; }
          a { color: var(--link); }
          .about { background: var(--card); border-radius: 0.5rem; padding: 0.75rem 1rem;
            margin: 1rem 0; font-size: 0.9rem; overflow-wrap: anywhere; }
          .about code { font-size: 0.85rem; }
          .muted { color: var(--muted); }
          ol { list-style: none; margin: 0; padding: 0; }
          li { padding: 0.75rem 0; border-bottom: 1px solid var(--line); }
          li:last-child { border-bottom: 0; }
          li h2 { font-size: 1.05rem; margin: 0; font-weight: 600; overflow-wrap: anywhere; }
          .date { color: var(--muted); font-size: 0.85rem; }
          .desc { margin: 0.25rem 0 0; font-size: 0.95rem; overflow-wrap: anywhere; }
          .empty { color: var(--muted); font-style: italic; }
        </style>
      </head>
      <body>
        <main>
          <xsl:apply-templates select="rss/channel | atom:feed"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <!-- RSS 2.0 -->
  <xsl:template match="channel">
    <header>
      <h1><xsl:value-of select="title"/></h1>
      <p class="muted"><xsl:value-of select="description"/></p>
    </header>
    <xsl:call-template name="about">
      <xsl:with-param name="self" select="atom:link[@rel='self']/@href"/>
      <xsl:with-param name="site" select="link"/>
    </xsl:call-template>
    <xsl:choose>
      <xsl:when test="item">
        <ol><xsl:apply-templates select="item"/></ol>
      </xsl:when>
      <xsl:otherwise><p class="empty">No items yet.</p></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template match="item">
    <li class="item">
      <h2>
        <xsl:call-template name="title-link">
          <xsl:with-param name="title" select="title"/>
          <xsl:with-param name="href" select="link"/>
        </xsl:call-template>
      </h2>
      <xsl:if test="pubDate">
        <!-- "Wed, 25 Nov 2026 00:00:00 +0000": the day is what matters. -->
        <div class="date"><xsl:value-of select="substring(pubDate, 1, 16)"/></div>
      </xsl:if>
      <xsl:if test="normalize-space(description)">
        <p class="desc">
          <xsl:call-template name="html-as-text">
            <xsl:with-param name="s" select="description"/>
          </xsl:call-template>
        </p>
      </xsl:if>
    </li>
  </xsl:template>

  <!-- Atom 1.0 -->
  <xsl:template match="atom:feed">
    <header>
      <h1><xsl:value-of select="atom:title"/></h1>
      <p class="muted"><xsl:value-of select="atom:subtitle"/></p>
    </header>
    <xsl:call-template name="about">
      <xsl:with-param name="self" select="atom:link[@rel='self']/@href"/>
      <xsl:with-param name="site" select="atom:link[@rel='alternate']/@href"/>
    </xsl:call-template>
    <xsl:choose>
      <xsl:when test="atom:entry">
        <ol><xsl:apply-templates select="atom:entry"/></ol>
      </xsl:when>
      <xsl:otherwise><p class="empty">No items yet.</p></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template match="atom:entry">
    <li class="item">
      <h2>
        <xsl:call-template name="title-link">
          <xsl:with-param name="title" select="atom:title"/>
          <xsl:with-param name="href"
              select="(atom:link[@rel='alternate'] | atom:link[not(@rel)])[1]/@href"/>
        </xsl:call-template>
      </h2>
      <xsl:variable name="when" select="(atom:published | atom:updated)[1]"/>
      <xsl:if test="$when">
        <!-- RFC 3339: the date part. -->
        <div class="date"><xsl:value-of select="substring($when, 1, 10)"/></div>
      </xsl:if>
      <xsl:variable name="body" select="(atom:summary | atom:content)[1]"/>
      <xsl:if test="normalize-space($body)">
        <p class="desc">
          <xsl:choose>
            <xsl:when test="$body/@type = 'html'">
              <xsl:call-template name="html-as-text">
                <xsl:with-param name="s" select="$body"/>
              </xsl:call-template>
            </xsl:when>
            <xsl:otherwise><xsl:value-of select="$body"/></xsl:otherwise>
          </xsl:choose>
        </p>
      </xsl:if>
    </li>
  </xsl:template>

  <!-- Shared pieces -->

  <!-- What this page is and how to subscribe. -->
  <xsl:template name="about">
    <xsl:param name="self"/>
    <xsl:param name="site"/>
    <div class="about">
      <strong>This is a web feed.</strong>
      <xsl:text> Subscribe by copying its address into your feed reader</xsl:text>
      <xsl:if test="$self">
        <xsl:text>: </xsl:text><code><xsl:value-of select="$self"/></code>
      </xsl:if>
      <xsl:text>. </xsl:text>
      <xsl:if test="$site">
        <a href="{$site}">Status page and all feeds</a>
      </xsl:if>
    </div>
  </xsl:template>

  <!-- A title, linked when the link is http(s): a javascript: link from a captured
       page must not become clickable. -->
  <xsl:template name="title-link">
    <xsl:param name="title"/>
    <xsl:param name="href"/>
    <xsl:choose>
      <xsl:when test="starts-with($href, 'https://') or starts-with($href, 'http://')">
        <a href="{$href}" rel="noopener noreferrer"><xsl:value-of select="$title"/></a>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$title"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- Escaped HTML shown as text: tags dropped, paragraph ends and <br> as line
       breaks, entities decoded.
       XSLT 1.0 has no loops, and the templates below recurse once per tag and per
       entity; libxslt stops at 3000 nested calls, so one summary of 5,000 "&" would stop
       the whole page. Long text is therefore cut in halves first (at a point outside any
       entity or tag), which keeps the depth near 2 x 256 + log2(length). -->
  <xsl:template name="html-as-text">
    <xsl:param name="s"/>
    <xsl:variable name="n" select="string-length($s)"/>
    <xsl:choose>
      <xsl:when test="$n &gt; 256">
        <xsl:variable name="mid" select="floor($n div 2)"/>
        <!-- Entities and our tags are at most 6 characters long: one that crosses the
             middle starts in the 8 characters ending there. Cut before the first. -->
        <xsl:variable name="window" select="substring($s, $mid - 7, 8)"/>
        <xsl:variable name="amp">
          <xsl:choose>
            <xsl:when test="contains($window, '&amp;')">
              <xsl:value-of select="string-length(substring-before($window, '&amp;'))"/>
            </xsl:when>
            <xsl:otherwise>8</xsl:otherwise>
          </xsl:choose>
        </xsl:variable>
        <xsl:variable name="lt">
          <xsl:choose>
            <xsl:when test="contains($window, '&lt;')">
              <xsl:value-of select="string-length(substring-before($window, '&lt;'))"/>
            </xsl:when>
            <xsl:otherwise>8</xsl:otherwise>
          </xsl:choose>
        </xsl:variable>
        <xsl:variable name="cut">
          <xsl:choose>
            <xsl:when test="$amp &lt; 8 or $lt &lt; 8">
              <xsl:value-of select="$mid - 8 + $amp * ($amp &lt;= $lt) + $lt * ($lt &lt; $amp)"/>
            </xsl:when>
            <xsl:otherwise><xsl:value-of select="$mid"/></xsl:otherwise>
          </xsl:choose>
        </xsl:variable>
        <xsl:call-template name="html-as-text">
          <xsl:with-param name="s" select="substring($s, 1, $cut)"/>
        </xsl:call-template>
        <xsl:call-template name="html-as-text">
          <xsl:with-param name="s" select="substring($s, $cut + 1)"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:call-template name="html-as-text-linear">
          <xsl:with-param name="s" select="$s"/>
        </xsl:call-template>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- html-as-text over a short string: one call per tag. -->
  <xsl:template name="html-as-text-linear">
    <xsl:param name="s"/>
    <xsl:choose>
      <xsl:when test="contains($s, '&lt;')">
        <xsl:call-template name="decode-entities">
          <xsl:with-param name="s" select="substring-before($s, '&lt;')"/>
        </xsl:call-template>
        <xsl:variable name="rest" select="substring-after($s, '&lt;')"/>
        <!-- The tag's name, lower-cased, with spaces and slashes dropped. -->
        <xsl:variable name="tag"
            select="translate(substring-before($rest, '&gt;'), 'PBR /', 'pbr')"/>
        <xsl:variable name="after" select="substring-after($rest, '&gt;')"/>
        <xsl:if test="(($tag = 'p' and starts-with($rest, '/')) or $tag = 'br')
                      and normalize-space($after)">
          <br/>
        </xsl:if>
        <xsl:call-template name="html-as-text-linear">
          <xsl:with-param name="s" select="$after"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:call-template name="decode-entities">
          <xsl:with-param name="s" select="$s"/>
        </xsl:call-template>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- Decodes &amp; &lt; &gt; &quot; &#39; in one pass (so "&amp;lt;" stays "&lt;"). -->
  <xsl:template name="decode-entities">
    <xsl:param name="s"/>
    <xsl:choose>
      <xsl:when test="contains($s, '&amp;')">
        <xsl:value-of select="substring-before($s, '&amp;')"/>
        <xsl:variable name="rest" select="substring-after($s, '&amp;')"/>
        <xsl:choose>
          <xsl:when test="starts-with($rest, 'amp;')">
            <xsl:text>&amp;</xsl:text>
            <xsl:call-template name="decode-entities">
              <xsl:with-param name="s" select="substring($rest, 5)"/>
            </xsl:call-template>
          </xsl:when>
          <xsl:when test="starts-with($rest, 'lt;')">
            <xsl:text>&lt;</xsl:text>
            <xsl:call-template name="decode-entities">
              <xsl:with-param name="s" select="substring($rest, 4)"/>
            </xsl:call-template>
          </xsl:when>
          <xsl:when test="starts-with($rest, 'gt;')">
            <xsl:text>&gt;</xsl:text>
            <xsl:call-template name="decode-entities">
              <xsl:with-param name="s" select="substring($rest, 4)"/>
            </xsl:call-template>
          </xsl:when>
          <xsl:when test="starts-with($rest, 'quot;')">
            <xsl:text>"</xsl:text>
            <xsl:call-template name="decode-entities">
              <xsl:with-param name="s" select="substring($rest, 6)"/>
            </xsl:call-template>
          </xsl:when>
          <xsl:when test="starts-with($rest, '#39;')">
            <xsl:text>'</xsl:text>
            <xsl:call-template name="decode-entities">
              <xsl:with-param name="s" select="substring($rest, 5)"/>
            </xsl:call-template>
          </xsl:when>
          <xsl:otherwise>
            <xsl:text>&amp;</xsl:text>
            <xsl:call-template name="decode-entities">
              <xsl:with-param name="s" select="$rest"/>
            </xsl:call-template>
          </xsl:otherwise>
        </xsl:choose>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$s"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
